"""Coverage-guided fuzz targets for every input that crosses a trust boundary (run with `scripts/fuzz`).

Each target module in `tests.fuzz.targets` defines ``setup() -> Callable[[bytes], None]``: the returned
function takes one fuzz input and raises `Finding` (or any other exception) when an invariant breaks.
Seeds live in ``tests/fuzz/corpus/TARGET/``.
"""
