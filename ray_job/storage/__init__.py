"""Storage, at the bottom: files on a local disk or in an object store, whatever they hold.

It imports no stage, and every stage reaches files through it: `store` (a directory of whole
files: the run directory and its folders), `remote_files` (input files behind URLs: listing,
streaming, ranged reads, local copies), `scratch` (private local folders for caches).
"""
