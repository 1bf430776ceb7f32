"""Model, losses, metrics, training and export. The only place in the core that imports torch."""
