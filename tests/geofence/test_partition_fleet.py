"""A partition's fleet as arrays: states round-trip as the checker's dicts, and through a checkpoint record."""

from __future__ import annotations

import numpy as np
import pytest

from engine.geofence.fleet import PartitionFleet

MOVING = {"ts": 1.5, "lat": 24.48, "lon": 118.04, "x": 100.25, "y": -3.5, "class": "hazmat", "speed": 42.37,
          "zones": {}, "pos": 1 << 20 | 3}
IN_ZONE = {"ts": 2.0, "lat": 24.5, "lon": 118.1, "x": 1.0, "y": 2.0, "class": "tanker-x", "speed": None,
           "zones": {"haicang-tunnel": {"rule": "forbid", "in": True, "since": 1.0, "inc": "abc"}},
           "sus": [[1.9, 5.0, 6.0]], "off": {"alert": "a1", "since": 1.0}}


def test_states_round_trip_as_the_checkers_dicts():
    f = PartitionFleet(capacity=1)   # grows
    f.put_state("闽DH0001", MOVING)
    f.put_state("bus-7", IN_ZONE)
    assert f.state("闽DH0001") == MOVING and f.state("bus-7") == IN_ZONE
    assert f.state("unknown") is None and len(f) == 2 and "bus-7" in f
    f.put_state("bus-7", {**IN_ZONE, "zones": {}, "sus": None})   # left the zone: the extras go
    assert f.state("bus-7") == {k: v for k, v in IN_ZONE.items() if k not in ("sus",)} | {"zones": {}}
    assert dict(f.items()).keys() == {"闽DH0001", "bus-7"}


def test_vectorised_writes_and_lookups():
    f = PartitionFleet()
    ids = [f"v{i}" for i in range(5000)]
    rows = f.add(ids + ids[:10])                 # repeats get one row
    assert rows.size == 5000 and f.lookup(["v3", "nope"]).tolist() == [3, -1]
    n = rows.size
    f.write(rows, ts=np.arange(n, dtype=float), lat=np.full(n, 24.5), lon=np.full(n, 118.1), x=np.zeros(n),
            y=np.ones(n), speed=np.full(n, np.nan), class_code=np.full(n, f.code_of_class("taxi"), dtype=np.uint8))
    assert f.state("v4999") == {"ts": 4999.0, "lat": 24.5, "lon": 118.1, "x": 0.0, "y": 1.0, "class": "taxi",
                                "speed": None, "zones": {}}


def test_a_checkpoint_record_restores_every_row():
    f = PartitionFleet()
    f.put_state("闽DH0001", MOVING)
    f.put_state("bus-7", IN_ZONE)
    g = PartitionFleet.unpack(f.pack())
    assert dict(g.items()) == dict(f.items())
    assert PartitionFleet.unpack(PartitionFleet().pack()).state("x") is None


@pytest.mark.parametrize("cut", [3, 20, -1])
def test_a_damaged_checkpoint_record_is_refused(cut):
    f = PartitionFleet()
    f.put_state("闽DH0001", MOVING)
    with pytest.raises(ValueError, match="fleet record"):
        PartitionFleet.unpack(f.pack()[:cut])
    with pytest.raises(ValueError, match="unknown header"):
        PartitionFleet.unpack(b"XXXX" + f.pack()[4:])
