"""Foreign readers of the lake, as a user of each engine reads a Delta table: no project code."""
