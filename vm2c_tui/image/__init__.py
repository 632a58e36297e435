"""The Docker image: through a daemon (`daemon`: reference, client, room check, import or
build, smoke test; `upload`, `writeback`, `dataroot` make the import fast and safe), without one
(`loadable`: a `docker load`-able archive), the Dockerfile of the classic recipe (`dockerfile`),
and a private daemon for tests and the demo (`dockerd`).
"""
