"""Storage, at the bottom: files on a local disk or in an object store, whatever they hold.

It imports no stage (only `errors` and `redact`), and every stage reaches stored files through
it. `files` is the one door: every read, listing, write, rename and removal is a method of
`files.Files`, made only by `files.files_for(location)`. Built on it: `store` (a directory of
whole files: the run directory and its folders), `remote_files` (input files: listing,
streaming, ranged reads, versions, local copies of DuckDB files). `scratch`: private local
folders for caches.
"""
