"""Built-in solvers, one module per method, registered through the same hooks as third-party plugins."""
