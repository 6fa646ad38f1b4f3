"""Solvers of the ``hybrid`` scenario (mmWave hybrid precoding, seed 002; SCENARIOS.md section 5).

* :mod:`.common`: the pieces they share: the digital precoder on the whitened effective channel (ZF or
  WMMSE, power exact), the fully-digital WMMSE target, the two-phase-shifter construction;
* :mod:`.element_altmax`: ``element-altmax`` (Sohrabi & Yu 2016, Algorithm 3 for MU-MISO);
* :mod:`.altmin`: ``mo-altmin`` (Yu, Shen, Zhang, Letaief 2016, manifold optimisation) and ``mm-altmin``
  (Huang, Ye, Xiao 2020, majorisation-minimisation), approximating the fully-digital precoder;
* :mod:`.reference`: ``fd-wmmse``, the fully-digital WMMSE reference row, and the baselines ``phase-zf``
  and ``random-zf`` (GGML's starting point).
"""
