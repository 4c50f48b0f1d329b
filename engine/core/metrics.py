"""Every Prometheus metric of Citywatch, built against an injected registry.

Names are the ones README "Metrics" lists. Counters are counted where the event is
read from the log of record, so that adding workers adds up: each worker
counts the partitions it owns.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 30.0, 60.0, 300.0)


class WorkerMetrics:
    """Metrics of a Faust worker (served on ``web.port``/metrics)."""

    def __init__(self, registry: CollectorRegistry):
        self.registry = registry
        self.fixes_received = Counter(
            "citywatch_fixes_received_total", "Fixes received, accepted or rejected, by source",
            ["source"], registry=registry)
        self.fixes_rejected = Counter(
            "citywatch_fixes_rejected_total", "Fixes rejected, by reason", ["reason"], registry=registry)
        self.fixes_late = Counter(
            "citywatch_fixes_late_total", "Late (out-of-order) fixes evaluated for the audit record only",
            registry=registry)
        self.zone_checks = Counter(
            "citywatch_zone_checks_total", "Fixes checked against the zone index", registry=registry)
        self.alerts = Counter(
            "citywatch_alerts_total", "Alerts emitted, by kind and severity", ["kind", "severity"], registry=registry)
        self.fix_to_alert = Histogram(
            "citywatch_fix_to_alert_seconds", "Event time of the fix to the alert being emitted",
            buckets=LATENCY_BUCKETS, registry=registry)
        self.vehicles_active = Gauge(
            "citywatch_vehicles_active", "Vehicles with a fix in the active window, by class",
            ["class"], registry=registry)
        self.zones_loaded = Gauge("citywatch_zones_loaded", "Zones in the active index", registry=registry)
        self.zone_records_invalid = Gauge(
            "citywatch_zone_records_invalid", "Records on the zones topic skipped as invalid", registry=registry)
        self.alerts_delivered = Counter(
            "citywatch_alerts_delivered_total", "Alerts delivered to an outbound channel", ["channel"],
            registry=registry)
        self.alert_delivery_failures = Counter(
            "citywatch_alert_delivery_failures_total", "Failed attempts to deliver an alert", ["channel"],
            registry=registry)
        self.alert_delivery_backlog = Gauge(
            "citywatch_alert_delivery_backlog", "Alerts on this worker's Kafka alerts partitions not yet delivered",
            ["channel"], registry=registry)
        self.alert_delivery_lag = Gauge(
            "citywatch_alert_delivery_lag_seconds", "Age of the oldest alert read from Kafka and not yet delivered "
            "(0 when caught up)", ["channel"], registry=registry)
        self.batch_size = Histogram(
            "citywatch_batch_fixes", "Fixes per processed batch",
            buckets=(1, 10, 50, 100, 250, 500, 1000, 5000), registry=registry)
        self.processing_errors = Counter(
            "citywatch_processing_errors_total", "Batches that raised while being processed", ["agent"],
            registry=registry)
        self.checkpointed = Counter(
            "citywatch_states_checkpointed_total", "Vehicle states written to the tracks table at a checkpoint, "
            "as rows of its blocks", registry=registry)
        self.vehicles_in_memory = Gauge(
            "citywatch_vehicles_in_memory", "Vehicle states this worker holds for its partitions", registry=registry)
        self.worker_lag = Gauge(
            "citywatch_worker_lag_seconds", "How long the oldest fix of the last batch waited in Kafka before this "
            "worker checked it, worst of its partitions (0 when nothing waits)", registry=registry)
        # HTTP APIs (engine.web): requests refused before an API acted on them
        self.http_refused = Counter(
            "citywatch_http_refused_total", "HTTP requests refused by API-key checks or body limits, by reason",
            ["reason"], registry=registry)
        # Driver vetting (engine.vetting)
        self.vetting_decisions = Counter(
            "citywatch_vetting_decisions_total", "Vetting decisions made, by outcome", ["outcome"],
            registry=registry)
        self.vetting_decision_seconds = Histogram(
            "citywatch_vetting_decision_seconds", "HTTP application received to decision answered",
            buckets=LATENCY_BUCKETS, registry=registry)
        self.vetting_records = Counter(
            "citywatch_vetting_records_total", "Records stored in the vetting records table, by kind", ["kind"],
            registry=registry)
        self.vetting_inputs_rejected = Counter(
            "citywatch_vetting_inputs_rejected_total", "Applications and records rejected as invalid, by source and reason",
            ["source", "reason"], registry=registry)
        self.vetting_drivers_flagged = Counter(
            "citywatch_vetting_drivers_flagged_total", "Licensed drivers flagged by a new record, by rule and action",
            ["rule", "action"], registry=registry)
        # Citizen reports and tasks (engine.casework, engine.casework)
        self.reports = Counter(
            "citywatch_reports_total", "Reports taken by the duplicate check, by outcome (new task or duplicate)",
            ["outcome"], registry=registry)
        self.reports_rejected = Counter(
            "citywatch_reports_rejected_total", "Reports refused at intake (HTTP and MQTT), by reason", ["reason"],
            registry=registry)
        self.tasks_open = Gauge(
            "citywatch_tasks_open", "Open tasks of the partitions this worker owns, by level and state",
            ["level", "state"], registry=registry)
        self.tasks_escalated = Counter(
            "citywatch_tasks_escalated_total", "Tasks escalated, by the level they went to", ["level"],
            registry=registry)
        self.task_close_seconds = Histogram(
            "citywatch_task_close_seconds", "First report to the task closed (or rejected)",
            buckets=(10, 60, 300, 900, 3600, 4 * 3600, 12 * 3600, 86400, 2 * 86400, 5 * 86400, 10 * 86400, 30 * 86400),
            registry=registry)
        self.task_events = Counter(
            "citywatch_task_events_total", "Department and supervisor events, by action and outcome (applied, or "
            "why not)", ["action", "outcome"], registry=registry)
        # The one-map page (engine.onemap)
        self.onemap_clients = Gauge(
            "citywatch_onemap_clients", "Browsers connected to this worker's one-map stream", registry=registry)
        self.onemap_messages = Counter(
            "citywatch_onemap_messages_total", "Server-sent events written to browsers, by type", ["type"],
            registry=registry)
        self.onemap_bytes = Counter(
            "citywatch_onemap_bytes_total", "Bytes of server-sent events written to browsers", registry=registry)
        self.onemap_client_resyncs = Counter(
            "citywatch_onemap_client_resyncs_total", "Browsers that fell behind by onemap.client_queue deltas and "
            "were sent a snapshot instead", registry=registry)
        self.onemap_vehicles = Gauge(
            "citywatch_onemap_vehicles", "Vehicles on this worker's one-map (all partitions)", registry=registry)
        self.onemap_tick_seconds = Histogram(
            "citywatch_onemap_tick_seconds", "CPU time to build and queue one delta",
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25), registry=registry)
        self.onemap_records_skipped = Counter(
            "citywatch_onemap_records_skipped_total", "Records the one-map could not use, by topic and reason",
            ["topic", "reason"], registry=registry)


class BridgeMetrics:
    """Metrics of an MQTT-to-Kafka bridge (served on ``bridge.metrics_port``)."""

    def __init__(self, registry: CollectorRegistry):
        self.registry = registry
        self.messages = Counter(
            "citywatch_bridge_messages_total", "MQTT messages received by the bridge", registry=registry)
        self.fixes_produced = Counter(
            "citywatch_bridge_fixes_produced_total", "Valid fixes produced to Kafka", registry=registry)
        self.batches_produced = Counter(
            "citywatch_bridge_batches_produced_total", "Kafka messages (partition batches) of fixes produced",
            registry=registry)
        self.rejections_produced = Counter(
            "citywatch_bridge_rejections_total", "Rejected inputs produced to the rejected topic, by reason",
            ["reason"], registry=registry)
        self.kafka_errors = Counter(
            "citywatch_bridge_kafka_errors_total", "Kafka produce attempts that failed", registry=registry)
        self.in_flight = Gauge(
            "citywatch_bridge_in_flight", "MQTT messages received but not yet acknowledged", registry=registry)
        self.mqtt_connected = Gauge(
            "citywatch_bridge_mqtt_connected", "1 while the bridge is connected to the MQTT broker",
            registry=registry)
        self.kafka_up = Gauge(
            "citywatch_bridge_kafka_up", "0 while Kafka does not take the bridge's records (it holds them back)",
            registry=registry)
        self.backpressure = Counter(
            "citywatch_bridge_backpressure_total", "Times the bridge held bridge.max_in_flight messages and stopped "
            "reading from the MQTT broker", registry=registry)
        self.broker_dropped = Counter(
            "citywatch_bridge_broker_dropped_messages", "Messages the MQTT broker reported dropped while this bridge "
            "watched its $SYS/broker/publish/messages/dropped count (mosquitto: a subscriber's queue was full)",
            registry=registry)


#: Frame to reply: most replies wait for a Kafka acknowledgement (milliseconds), a few for an outage.
REPLY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.25, 0.35, 0.5, 0.75, 1.0, 1.5, 2.5,
                 5.0, 10.0, 30.0, 60.0)


class Jt808Metrics:
    """Metrics of a JT/T 808 gateway process (served on ``jt808.metrics_port``).

    ``kafka_up`` and ``kafka_errors`` carry the attribute names :class:`engine.telemetry.delivery.KafkaHealth`
    sets, so the gateway's Kafka health is reported under its own names.
    """

    def __init__(self, registry: CollectorRegistry):
        self.registry = registry
        self.connections_open = Gauge(
            "citywatch_jt808_connections_open", "Terminal connections open", registry=registry)
        self.connections = Counter(
            "citywatch_jt808_connections_total", "Terminal connections by what became of them: accepted, refused "
            "(jt808.max_connections), closed_idle, closed_bad_frames, closed_slow, closed_logout, closed_peer, "
            "closed_shutdown, closed_error", ["result"], registry=registry)
        self.registrations = Counter(
            "citywatch_jt808_registrations_total", "0x0100 registrations answered, by result", ["result"],
            registry=registry)
        self.authentications = Counter(
            "citywatch_jt808_authentications_total", "0x0102 authentications answered, by result (ok, failed)",
            ["result"], registry=registry)
        self.frames = Counter(
            "citywatch_jt808_frames_total", "Frames decoded, by message id (0x0200; other for ids not handled)",
            ["msg_id"], registry=registry)
        self.frames_rejected = Counter(
            "citywatch_jt808_frames_rejected_total", "Frames that could not be decoded, by reason", ["reason"],
            registry=registry)
        self.unauthenticated = Counter(
            "citywatch_jt808_unauthenticated_total", "Location reports refused (0x8001 result 1) before a "
            "successful 0x0102 on their connection", registry=registry)
        self.fixes = Counter(
            "citywatch_jt808_fixes_total", "Valid fixes produced to Kafka", registry=registry)
        self.fixes_rejected = Counter(
            "citywatch_jt808_fixes_rejected_total", "Decoded fixes the fix rules rejected (to fixes.rejected), "
            "by reason", ["reason"], registry=registry)
        self.reply_seconds = Histogram(
            "citywatch_jt808_reply_seconds", "Frame received to its reply written (a location's once Kafka has "
            "its fixes)", buckets=REPLY_BUCKETS, registry=registry)
        self.pending_replies = Gauge(
            "citywatch_jt808_pending_replies", "Frames whose records Kafka has not yet acknowledged",
            registry=registry)
        self.backpressure = Counter(
            "citywatch_jt808_backpressure_total", "Times a connection had jt808.max_pending_replies frames "
            "waiting for Kafka and was not read until some were answered", registry=registry)
        self.batches_produced = Counter(
            "citywatch_jt808_batches_produced_total", "Kafka messages (partition batches) of fixes produced",
            registry=registry)
        self.reassembly_dropped = Counter(
            "citywatch_jt808_reassembly_dropped_total", "Incomplete sub-packaged messages dropped, by reason "
            "(timeout, overflow)", ["reason"], registry=registry)
        self.kafka_errors = Counter(
            "citywatch_jt808_kafka_errors_total", "Kafka produce attempts that failed", registry=registry)
        self.kafka_up = Gauge(
            "citywatch_jt808_kafka_up", "0 while Kafka does not take the gateway's records (replies wait)",
            registry=registry)
