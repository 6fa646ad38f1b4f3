"""The WMMSE family of linear-precoding algorithms and the DPC capacity bound they are measured against."""
