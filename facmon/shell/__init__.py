"""The shell: the top of the house, and the only part that knows every other part.

The command line (`cli`), `facmon up` (`up`), settings (`settings`), the composition root that builds every service
(`compose`), the database migrations (`migrations`, one lineage for every table) and the operator commands (`ops`).
Nothing imports the shell.
"""
