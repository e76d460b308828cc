"""pcsc layer."""
