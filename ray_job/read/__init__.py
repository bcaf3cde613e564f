"""Stage 1, read: input files -> read units -> rows (key, id, text, text hash).

`inputs` finds the files and cuts them into read units (byte ranges, row ranges, key ranges);
`readers` turns one unit into records, `text` renders a record's template, `sources` makes the
rows of a unit (and its rejects, and for `--previous` runs the rows whose old vector is reused).
Keys (`keys`) depend only on the files, never on how Ray splits the work.
"""
