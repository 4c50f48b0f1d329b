"""Reports over MQTT: ``reports.mqtt_topic`` (default ``citywatch/reports``), one JSON object per message.

The payload carries the Open311 POST arguments (``service_code``, ``lat``,
``long``, ``description``, ...) and optionally ``token``: the answer
(``service_request_id``, ``service_notice``, ``duplicate``, or ``errors``) is
then published to ``<mqtt_topic>/answers/<token>`` at QoS 1 (through
:class:`engine.mqtt.publisher.Publisher`, its own connection); an answer the
broker has not acknowledged within ``ANSWER_TIMEOUT_S``, or that finds no
connection, is logged as not delivered.

Each worker subscribes at QoS 1 with a persistent session and acknowledges a
message only once Kafka has the report (or its rejection), so a worker that
dies loses nothing. With several workers set ``reports.mqtt_shared_group``
(``$share/<group>/<topic>``, mosquitto) so that each report reaches one of
them; without it every worker takes every message, which stays harmless: an
MQTT report's id is derived from its topic and bytes, so the copies are one
report to the duplicate check.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import faust
import orjson
import paho.mqtt.client as mqtt

from engine.alerts.models import stable_id
from engine.casework.errors import InvalidReport
from engine.casework.intake import Intake, decode_json, rejection
from engine.casework.report_topics import ReportTopics
from engine.casework.settings import CaseworkConfig
from engine.casework.validation import TOKEN
from engine.core.metrics import WorkerMetrics
from engine.kafka.answers import AnswerWaiter
from engine.mqtt import paho as mqttc
from engine.mqtt.publisher import Publisher

log = logging.getLogger(__name__)

ANSWER_TIMEOUT_S = 10.0  # an answer not acknowledged by then counts as not delivered
STOP_TIMEOUT_S = 2.0     # how long a stopping worker waits for the broker to acknowledge answers in flight


def answer_topic(settings: CaseworkConfig, token: str) -> str:
    return f"{settings.reports.mqtt_topic}/answers/{token}"


def register(app: faust.App, settings: CaseworkConfig, intake: Intake, topics: ReportTopics, waiter: AnswerWaiter,
             metrics: WorkerMetrics) -> None:
    cfg = settings.reports
    subscription = f"$share/{cfg.mqtt_shared_group}/{cfg.mqtt_topic}" if cfg.mqtt_shared_group else cfg.mqtt_topic
    pending: set[asyncio.Task[Any]] = set()

    async def answer(pub: Publisher, token: str, body: dict[str, Any]) -> None:
        if not pub.connected:
            log.warning("reports over MQTT: answer for token %s not delivered: MQTT broker not connected", token)
            return
        try:
            await asyncio.wait_for(pub.publish(answer_topic(settings, token), orjson.dumps({"token": token, **body})),
                                   ANSWER_TIMEOUT_S)
        except TimeoutError:
            log.warning("reports over MQTT: answer for token %s not delivered: MQTT publish not acknowledged within "
                        "%.0f s", token, ANSWER_TIMEOUT_S)
        except OverflowError as exc:
            log.warning("reports over MQTT: answer for token %s not delivered: %s", token, exc)

    async def answer_when_done(pub: Publisher, token: str, report_id: str,
                               fut: asyncio.Future[dict[str, Any]]) -> None:
        try:
            outcome = await asyncio.wait_for(fut, cfg.answer_timeout_s * 6)
        except TimeoutError:
            waiter.forget(report_id)
            await answer(pub, token, {"report": report_id, "service_notice": "accepted; the request id is not known "
                                                                              "yet (GET tokens/<report>.json)"})
            return
        await answer(pub, token, {"service_request_id": outcome.get("service_request_id"),
                                  "service_notice": outcome.get("service_notice"),
                                  "duplicate": bool(outcome.get("duplicate"))})

    async def handle(pub: Publisher, topic: str, payload: bytes) -> None:
        report_id = stable_id("mqtt-report", topic, payload)
        try:
            report = intake.mqtt(payload, report_id=report_id)
        except InvalidReport as exc:
            metrics.reports_rejected.labels(exc.code).inc()
            try:
                args: Any = decode_json(payload)
            except InvalidReport:
                args = None
            fut = await topics.rejected.send(key=None, value=rejection(
                exc, source="mqtt", received_at=intake.clock.now(), args=args, raw_len=len(payload),
                where={"topic": topic}))
            await fut
            token = args.get("token") if isinstance(args, dict) else None
            if isinstance(token, str) and TOKEN.fullmatch(token):
                await answer(pub, token, {"errors": exc.open311()})
            return
        fut_outcome = waiter.expect(report_id) if report.token else None
        try:
            sent = await topics.reports.send(key=report.place_key.encode(), value=report.to_record())
            await sent
        except BaseException:
            waiter.forget(report_id)
            raise
        if fut_outcome is not None:
            t = asyncio.create_task(answer_when_done(pub, report.token, report_id, fut_outcome))
            pending.add(t)
            t.add_done_callback(pending.discard)

    @app.task
    async def take_mqtt_reports() -> None:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Any] = asyncio.Queue()
        client = mqttc.make_client(settings.mqtt, f"{settings.worker.app_id}-reports-{app.conf.web_port}",
                                   clean_session=False, manual_ack=True)
        mqttc.subscribe_on_connect(client, [(subscription, 1)])

        def on_message(client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, msg)

        client.on_message = on_message
        pub = Publisher(settings.mqtt, f"{settings.worker.app_id}-answers-{app.conf.web_port}")
        pub_task = asyncio.create_task(pub.run())
        mqttc.start(client, settings.mqtt)
        try:
            while True:
                msg = await queue.get()
                while True:
                    try:
                        await handle(pub, msg.topic, bytes(msg.payload))
                        break
                    except asyncio.CancelledError:
                        raise
                    except Exception:  # noqa: BLE001 - Kafka away: keep the message unacknowledged and retry
                        metrics.processing_errors.labels("take_mqtt_reports").inc()
                        log.exception("reports over MQTT: message on %s not stored; retrying", msg.topic)
                        await asyncio.sleep(1.0)
                client.ack(msg.mid, msg.qos)
        finally:
            client.disconnect()
            client.loop_stop()
            try:
                await pub.stop(answer_topic(settings, "$citywatch-fence"), timeout=STOP_TIMEOUT_S)
            finally:
                pub_task.cancel()
                pub.cancel_pending()
