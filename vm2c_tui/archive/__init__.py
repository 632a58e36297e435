"""The tar: GNU tar over a mounted tree (`gnutar`, with the read-ahead and the scan that tells
where it is: `readahead`, `treescan`), the user-space engine's tar (`usertar`, through the PAX
writer `tarwriter`), and what a finished tar holds that decides how it becomes an image
(`tarfacts`).
"""
