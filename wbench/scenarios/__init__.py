"""Built-in scenarios, one module each, registered through the same hooks as third-party plugins."""
