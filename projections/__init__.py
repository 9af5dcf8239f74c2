"""Read models built from the events topic: tables, the apply layer, query functions."""
