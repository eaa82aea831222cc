"""The output cache stays within its bounds and evicts the least recently used first."""

from __future__ import annotations

from engine.cache import OutputCache, estimate_size


def test_entries_beyond_the_limit_evict_the_least_recently_used():
    cache = OutputCache(max_entries=3, max_bytes=10**9)
    for key in "abc":
        cache.put(key, key.upper(), 1)
    assert cache.get("a") == "A"  # a is now the most recently used
    cache.put("d", "D", 1)
    assert "b" not in cache and {"a", "c", "d"} <= {k for k in "abcd" if k in cache}
    assert len(cache) == 3


def test_bytes_beyond_the_limit_evict_until_it_fits():
    cache = OutputCache(max_entries=100, max_bytes=100)
    cache.put("small", 1, 30)
    cache.put("medium", 2, 50)
    cache.put("large", 3, 60)
    assert "small" not in cache and "medium" not in cache and "large" in cache
    assert cache.bytes == 60
    cache.put("huge", 4, 101)  # bigger than the whole cache: not kept, nothing evicted
    assert "huge" not in cache and "large" in cache


def test_clearing_empties_it_and_stats_count_hits():
    cache = OutputCache()
    cache.put("k", "v", 10)
    assert cache.get("k") == "v" and cache.get("missing") is None
    stats = cache.stats()
    assert (stats["hits"], stats["misses"], stats["entries"]) == (1, 1, 1)
    cache.clear()
    assert len(cache) == 0 and cache.bytes == 0


def test_size_estimates_follow_the_data():
    from PIL import Image

    assert estimate_size(Image.new("RGB", (10, 20))) == 600
    assert estimate_size(b"x" * 1000) > 1000
    assert estimate_size(["x" * 100] * 3) > 300
