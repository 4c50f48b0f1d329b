"""Every worker's read model of the tasks: newer versions win, tombstones remove, tokens remembered."""

from __future__ import annotations

import asyncio

import orjson

from engine.casework.directory import TaskDirectory
from engine.casework.follow import _on_outcome, _on_task
from engine.kafka.answers import AnswerWaiter


def doc(sid: str, version: int, state: str = "dispatched") -> dict:
    return {"service_request_id": sid, "version": version, "state": state}


def test_newer_versions_win_in_any_order():
    d = TaskDirectory()
    assert d.upsert(doc("a", 2, "accepted")) and not d.upsert(doc("a", 1)) and not d.upsert(doc("a", 2, "x"))
    assert d.get("a")["state"] == "accepted" and d.upsert(doc("a", 3, "resolved"))
    assert not d.upsert({"version": 9}) and len(d) == 1


def test_topic_records_and_tombstones():
    d = TaskDirectory()
    _on_task(d, b"a", orjson.dumps(doc("a", 1)))
    _on_task(d, b"a", None)
    assert d.get("a") is None


def test_outcomes_fold_the_task_in_remember_tokens_and_resolve_waiters():
    async def run() -> None:
        d, w = TaskDirectory(), AnswerWaiter()
        fut = w.expect("report-1")
        outcome = {"id": "report-1", "kind": "report", "ok": True, "service_request_id": "a", "task": doc("a", 1)}
        _on_outcome(d, w, outcome)
        assert d.get("a")["version"] == 1 and d.tokens["report-1"] == "a"
        assert (await fut)["service_request_id"] == "a" and len(w) == 0
        _on_outcome(d, w, {"id": "c", "kind": "event", "ok": False, "task": doc("a", 1)})
        assert "c" not in d.tokens

    asyncio.run(run())
