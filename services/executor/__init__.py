"""The executor: carries out dispatch orders by calling endpoints, reports back as commands."""
