/* Citywatch one-map: zones, vehicles, alerts, incidents and citizen tasks on one live map.
 *
 * Data: server-sent events from /api/v1/onemap/stream (a snapshot, then a delta per tick; see
 * engine/onemap/view.py for the encoding). The data needs an operator API key: EventSource cannot send
 * headers, so the page asks for the key in its own form and keeps it in the citywatch_key session cookie
 * (SameSite=Strict, path=/, Secure on https), which the browser sends with the stream, snapshot and track
 * requests. Never in a URL, never logged or shown; "sign out" removes it. Map: Leaflet (vendored) for pan, zoom, zone polygons and the
 * optional tile layer; vehicles and tasks are drawn by one canvas layer (fast enough for 10,000 vehicles).
 * All coordinates are WGS-84; an optional tile layer must be WGS-84-based web mercator (not GCJ-02).
 * window.onemap exposes the state and a few counters for tests and the curious.
 */
(function () {
  "use strict";

  const CLASS_COLOURS = {hazmat: "#ff922b", police: "#4dabf7", fire: "#ff4d4f", ambulance: "#f783ac",
    taxi: "#ffd43b", bus: "#51cf66", ride_hailing: "#3bc9db", other: "#adb5bd"};
  const RULE_STYLE = {
    forbid: {color: "#ff4d4f", fillOpacity: 0.18, weight: 1.5},
    speed: {color: "#f59f00", fillOpacity: 0.12, weight: 1.5},
    corridor: {color: "#4dabf7", fillOpacity: 0.10, weight: 1.5, dashArray: "6 4"},
    watch: {color: "#94d82d", fillOpacity: 0.08, weight: 1.5},
    grid: {color: "#868e96", fillOpacity: 0.0, weight: 0.8},
  };
  const RULES = ["forbid", "speed", "corridor", "watch", "grid"];
  const GRID_WEIGHT = {city: 2.5, district: 2, street: 1.2, community: 0.8};
  const LEVEL_COLOURS = {community: "#b197fc", street: "#74c0fc", district: "#ffa94d", city: "#ff8787"};
  const FEED_MAX = 200;
  const OPENING = new Set(["zone.enter", "zone.overspeed", "zone.deviation", "zone.dwell", "vehicle.offline",
                           "vehicle.emergency", "vehicle.overspeed_alarm", "vehicle.fatigue_alarm"]);
  const TAU = 2 * Math.PI;

  const state = {
    config: null, classes: [], seq: -1, now: 0,
    vehicles: new Map(),   // slot -> {slot, id, cls, lat, lon, spd, hdg, ts}
    byId: new Map(),       // vehicle id -> slot
    alerts: [], alertIds: new Set(),   // newest first
    incidents: new Map(),  // incident id -> incident
    tasks: new Map(),      // service_request_id -> task
    zones: [],             // GeoJSON features
    hiddenClasses: new Set(), shownRules: new Set(["forbid", "speed", "corridor", "watch"]),
    zoneFilter: "", selected: null,
  };
  const stats = {snapshots: 0, deltas: 0, zonesDrawn: 0, vehiclesDrawn: 0, tasksDrawn: 0, lastDrawMs: 0,
    maxDrawMs: 0, draws: 0, trackPoints: 0, connected: false};
  const $ = (id) => document.getElementById(id);
  const esc = (s) => String(s == null ? "" : s).replace(/[&<>"']/g,
    (c) => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}[c]));

  let map = null, zoneLayer = null, zoneLayers = new Map(), canvasLayer = null, trackLine = null, source = null;
  let timeFmt = null;

  // ---------------------------------------------------------------- projection (spherical web mercator)
  function worldPoint(lat, lon, scale) {
    const s = Math.sin(Math.max(Math.min(lat, 85.0511), -85.0511) * Math.PI / 180);
    return [scale * (lon + 180) / 360, scale * (0.5 - Math.log((1 + s) / (1 - s)) / (4 * Math.PI))];
  }

  // ---------------------------------------------------------------- canvas layer: vehicles, tasks, incidents
  const CanvasLayer = L.Layer.extend({
    onAdd: function (m) {
      this._canvas = L.DomUtil.create("canvas", "cw-vehicles leaflet-zoom-hide");
      m.getPane("vehicles").appendChild(this._canvas);
      m.on("moveend zoomend resize viewreset", this._reset, this);
      this._reset();
    },
    onRemove: function (m) {
      L.DomUtil.remove(this._canvas);
      m.off("moveend zoomend resize viewreset", this._reset, this);
    },
    _reset: function () {
      const size = map.getSize(), dpr = window.devicePixelRatio || 1;
      this._topLeft = map.containerPointToLayerPoint([0, 0]);
      L.DomUtil.setPosition(this._canvas, this._topLeft);
      this._canvas.width = size.x * dpr; this._canvas.height = size.y * dpr;
      this._canvas.style.width = size.x + "px"; this._canvas.style.height = size.y + "px";
      this._dpr = dpr;
      this.redraw();
    },
    redraw: function () {
      if (!this._frame) this._frame = L.Util.requestAnimFrame(this._draw, this);
    },
    // container pixel of a position, with the view's numbers computed once per draw
    _projector: function () {
      const scale = 256 * Math.pow(2, map.getZoom()), origin = map.getPixelOrigin();
      const ox = origin.x + this._topLeft.x, oy = origin.y + this._topLeft.y;
      return (lat, lon) => { const p = worldPoint(lat, lon, scale); return [p[0] - ox, p[1] - oy]; };
    },
    _draw: function () {
      this._frame = null;
      const t0 = performance.now(), ctx = this._canvas.getContext("2d"), size = map.getSize();
      ctx.setTransform(this._dpr, 0, 0, this._dpr, 0, 0);
      ctx.clearRect(0, 0, size.x, size.y);
      const px = this._projector(), inView = (p) => p[0] > -10 && p[1] > -10 && p[0] < size.x + 10 && p[1] < size.y + 10;
      // tasks: squares by level, red edge when overdue
      let nt = 0;
      for (const t of state.tasks.values()) {
        if (t.lat == null) continue;
        const p = px(t.lat, t.lon);
        if (!inView(p)) continue;
        ctx.fillStyle = LEVEL_COLOURS[t.level] || "#dee2e6";
        ctx.fillRect(p[0] - 5, p[1] - 5, 10, 10);
        ctx.lineWidth = t.overdue ? 2.5 : 1; ctx.strokeStyle = t.overdue ? "#ff4d4f" : "#000a";
        ctx.strokeRect(p[0] - 5, p[1] - 5, 10, 10);
        nt++;
      }
      // vehicles: one path per class
      const paths = state.classes.map(() => new Path2D());
      const r = map.getZoom() >= 14 ? 4.5 : 3, zone = filterZone();
      let nv = 0;
      for (const v of state.vehicles.values()) {
        if (v.lat == null || !vehicleShown(v, zone)) continue;
        const p = px(v.lat, v.lon);
        if (!inView(p)) continue;
        paths[v.cls].moveTo(p[0] + r, p[1]); paths[v.cls].arc(p[0], p[1], r, 0, TAU);
        nv++;
      }
      ctx.lineWidth = 0.6; ctx.strokeStyle = "#000c";
      paths.forEach((path, i) => { ctx.fillStyle = CLASS_COLOURS[state.classes[i]] || "#adb5bd"; ctx.fill(path); ctx.stroke(path); });
      // open incidents: a red ring on the vehicle (or where the alert was raised)
      ctx.lineWidth = 2.5; ctx.strokeStyle = "#ff4d4f";
      for (const inc of state.incidents.values()) {
        const v = vehicleById(inc.vehicle_id), lat = v && v.lat != null ? v.lat : inc.lat, lon = v && v.lat != null ? v.lon : inc.lon;
        if (lat == null) continue;
        const p = px(lat, lon);
        if (!inView(p)) continue;
        ctx.beginPath(); ctx.arc(p[0], p[1], r + 6, 0, TAU); ctx.stroke();
      }
      // the selected vehicle
      const sel = vehicleById(state.selected);
      if (sel && sel.lat != null) {
        const p = px(sel.lat, sel.lon);
        ctx.lineWidth = 2; ctx.strokeStyle = "#ffffff";
        ctx.beginPath(); ctx.arc(p[0], p[1], r + 10, 0, TAU); ctx.stroke();
      }
      stats.vehiclesDrawn = nv; stats.tasksDrawn = nt; stats.draws++;
      stats.lastDrawMs = performance.now() - t0; stats.maxDrawMs = Math.max(stats.maxDrawMs, stats.lastDrawMs);
    },
    // what is under a click: the nearest vehicle or task within 8 px
    hit: function (containerPoint) {
      const px = this._projector(), cx = containerPoint.x, cy = containerPoint.y, zone = filterZone();
      let best = null, bestD = 64;
      for (const v of state.vehicles.values()) {
        if (v.lat == null || !vehicleShown(v, zone)) continue;
        const p = px(v.lat, v.lon), d = (p[0] - cx) ** 2 + (p[1] - cy) ** 2;
        if (d < bestD) { bestD = d; best = {vehicle: v}; }
      }
      for (const t of state.tasks.values()) {
        if (t.lat == null) continue;
        const p = px(t.lat, t.lon), d = (p[0] - cx) ** 2 + (p[1] - cy) ** 2;
        if (d < bestD) { bestD = d; best = {task: t}; }
      }
      return best;
    },
  });

  // ---------------------------------------------------------------- filters
  function vehicleById(id) {
    const slot = id == null ? undefined : state.byId.get(id);
    return slot === undefined ? null : state.vehicles.get(slot);
  }
  function className(v) { return state.classes[v.cls] || "other"; }
  function filterZone() { return state.zoneFilter ? state.zones.find((f) => f.id === state.zoneFilter) : null; }
  function vehicleShown(v, zone) {
    if (state.hiddenClasses.has(className(v))) return false;
    return !zone || insideGeometry(v.lat, v.lon, zone.geometry);
  }
  function alertShown(a) {
    if (a.class && state.hiddenClasses.has(a.class)) return false;
    return !state.zoneFilter || a.zone_id === state.zoneFilter;
  }
  // even-odd ray casting over every ring (holes included)
  function insideGeometry(lat, lon, g) {
    const polys = g.type === "Polygon" ? [g.coordinates] : g.type === "MultiPolygon" ? g.coordinates : [];
    let inside = false;
    for (const rings of polys) for (const ring of rings) {
      for (let i = 0, j = ring.length - 1; i < ring.length; j = i++) {
        const [xi, yi] = ring[i], [xj, yj] = ring[j];
        if ((yi > lat) !== (yj > lat) && lon < (xj - xi) * (lat - yi) / (yj - yi) + xi) inside = !inside;
      }
    }
    return inside;
  }

  // ---------------------------------------------------------------- zones
  function zoneStyle(f) {
    const p = f.properties, base = Object.assign({}, RULE_STYLE[p.rule] || RULE_STYLE.watch);
    if (p.rule === "grid") {  // boundaries only, heavier for higher levels
      base.weight = GRID_WEIGHT[p.level] || 0.8;
      if (p.level === "community") base.dashArray = "3 3";
    }
    if (!p.active) { base.fillOpacity = 0.03; base.dashArray = "2 6"; base.opacity = 0.6; }
    const incident = [...state.incidents.values()].some((i) => i.zone_id === p.id);
    if (incident) { base.weight = 4; base.color = "#ff4d4f"; base.fillOpacity = Math.max(base.fillOpacity, 0.3); }
    if (state.zoneFilter === p.id) { base.weight = Math.max(base.weight, 3); }
    return base;
  }
  function drawZones() {
    if (zoneLayer) zoneLayer.remove();
    zoneLayers = new Map();
    const shown = state.zones.filter((f) => state.shownRules.has(f.properties.rule));
    zoneLayer = L.geoJSON(shown, {
      style: zoneStyle,
      onEachFeature: (f, layer) => {
        zoneLayers.set(f.id, layer);
        const p = f.properties;
        layer.bindTooltip(`<b>${esc(p.name)}</b><br>${esc(p.rule)}${p.level ? " · " + esc(p.level) + " " + esc(p.code || "") : ""}${p.speed_limit_kmh ? " " + p.speed_limit_kmh + " km/h" : ""}` +
          `${p.classes ? "<br>classes: " + esc(p.classes.join(", ")) : ""}${p.exempt && p.exempt.length ? "<br>exempt: " + esc(p.exempt.join(", ")) : ""}` +
          `${p.active ? "" : "<br><i>schedule not in force</i>"}`, {sticky: true});
      },
    }).addTo(map);
    stats.zonesDrawn = zoneLayers.size;
    renderRules(); renderZoneFilter();
  }
  function restyleZones() { zoneLayers.forEach((layer) => layer.setStyle(zoneStyle)); }

  // ---------------------------------------------------------------- panels
  // Built once; later only the counts change, so a click is never lost to a re-render.
  function renderClasses() {
    const counts = {}, list = $("classes");
    for (const v of state.vehicles.values()) counts[className(v)] = (counts[className(v)] || 0) + 1;
    if (list.dataset.classes !== state.classes.join(",")) {
      list.dataset.classes = state.classes.join(",");
      list.innerHTML = state.classes.map((c) =>
        `<li><input type="checkbox" id="cls-${c}" data-class="${c}" ${state.hiddenClasses.has(c) ? "" : "checked"}>` +
        `<span class="swatch" style="background:${CLASS_COLOURS[c] || "#adb5bd"}"></span><label for="cls-${c}">${c}</label>` +
        `<span class="n" data-count="${c}"></span></li>`).join("");
    }
    list.querySelectorAll("[data-count]").forEach((el) => { el.textContent = counts[el.dataset.count] || 0; });
  }
  function renderRules() {
    const counts = {};
    state.zones.forEach((f) => { counts[f.properties.rule] = (counts[f.properties.rule] || 0) + 1; });
    $("rules").innerHTML = RULES.map((r) =>
      `<li><input type="checkbox" id="rule-${r}" data-rule="${r}" ${state.shownRules.has(r) ? "checked" : ""}>` +
      `<span class="swatch sq" style="background:${RULE_STYLE[r].color}"></span><label for="rule-${r}">${r === "grid" ? "grid boundaries" : r}</label>` +
      `<span class="n">${counts[r] || 0}</span></li>`).join("");
  }
  function renderZoneFilter() {
    const sel = $("zone-filter"), zones = state.zones.filter((f) => f.properties.rule !== "grid");
    sel.innerHTML = `<option value="">all zones</option>` + zones.map((f) =>
      `<option value="${esc(f.id)}" ${f.id === state.zoneFilter ? "selected" : ""}>${esc(f.properties.name)}</option>`).join("");
  }
  function fmtTime(iso) {
    const d = new Date(iso);
    return isNaN(d) ? "" : timeFmt.format(d);
  }
  function alertText(a) {
    const who = a.vehicle_id ? `<b>${esc(a.vehicle_id)}</b> <span class="c">${esc(a.class || "")}</span>` :
      a.service_request_id ? `task <b>${esc(a.service_request_id)}</b>` : "";
    const where = a.zone_name ? esc(a.zone_name) : a.service_name ? esc(a.service_name) : "";
    return `<span class="t">${fmtTime(a.ts)}</span> <span class="k">${esc(a.kind)}</span> ${who}` +
      `${where ? `<div class="z">${where}</div>` : ""}`;
  }
  // Keyed: an alert's element is made once and kept while it is listed (clicks are never lost to a re-render).
  const feedEls = new Map();
  function renderFeed() {
    const feed = $("feed"), items = state.alerts.filter(alertShown).slice(0, FEED_MAX);
    const keep = new Set(items.map((a) => a.alert_id));
    for (const [id, el] of feedEls) if (!keep.has(id)) { el.remove(); feedEls.delete(id); }
    let prev = null;
    for (const a of items) {
      let el = feedEls.get(a.alert_id);
      if (!el) {
        el = document.createElement("li");
        el.dataset.alertId = a.alert_id; el.innerHTML = alertText(a);
        feedEls.set(a.alert_id, el);
      }
      const cls = `alert sev-${a.severity}${OPENING.has(a.kind) && state.incidents.has(a.incident_id) ? " open" : ""}`;
      if (el.className !== cls) el.className = cls;
      const want = prev ? prev.nextSibling : feed.firstChild;
      if (want !== el) feed.insertBefore(el, want);
      prev = el;
    }
    $("incidents-count").textContent = state.incidents.size ? `· ${state.incidents.size} open incidents` : "";
  }
  function renderTasks() {
    const byLevel = {};
    for (const t of state.tasks.values()) (byLevel[t.level || "unassigned"] = byLevel[t.level || "unassigned"] || []).push(t);
    const levels = [...(state.config.levels || []).slice().reverse(), "unassigned"];
    let overdue = 0;
    const html = levels.filter((l) => byLevel[l]).map((l) => {
      const tasks = byLevel[l].sort((a, b) => (b.overdue - a.overdue) || String(a.expected || "").localeCompare(String(b.expected || "")));
      overdue += tasks.filter((t) => t.overdue).length;
      return `<div class="lvl">${esc(l)} · ${tasks.length}${tasks.some((t) => t.overdue) ? ` · <span class="due">${tasks.filter((t) => t.overdue).length} overdue</span>` : ""}</div><ul>` +
        tasks.map((t) => `<li class="task${t.overdue ? " overdue" : ""}" data-task-id="${esc(t.id)}">` +
          `<b>${esc(t.name || t.code || t.id)}</b> ${t.overdue ? `<span class="due">overdue</span>` : ""}` +
          `<div class="meta">${esc(t.state || "")}${t.agency ? " · " + esc(t.agency) : ""}${t.expected ? " · due " + esc(fmtDate(t.expected)) : ""}</div></li>`).join("") + "</ul>";
    }).join("");
    $("tasks").innerHTML = html || `<div class="meta">no open tasks</div>`;
    $("tasks-count").textContent = state.tasks.size ? `· ${state.tasks.size} open${overdue ? `, ${overdue} overdue` : ""}` : "";
  }
  function fmtDate(iso) {
    const d = new Date(iso);
    return isNaN(d) ? iso : d.toLocaleString("en-GB", {timeZone: state.config.city.tz, month: "short", day: "numeric", hour: "2-digit", minute: "2-digit"});
  }
  function renderCounts() {
    const zones = state.zones.filter((f) => f.properties.rule !== "grid").length;
    $("counts").textContent = `${state.vehicles.size} vehicles · ${zones} zones · ${state.incidents.size} open incidents`;
  }
  function renderSelection() {
    const box = $("selection"), v = vehicleById(state.selected);
    if (!state.selected) { box.hidden = true; return; }
    box.hidden = false;
    const incs = [...state.incidents.values()].filter((i) => i.vehicle_id === state.selected);
    box.innerHTML = v ? `<b>${esc(v.id)}</b> ${esc(className(v))}<br>` +
      `${v.spd != null ? v.spd + " km/h" : ""}${v.hdg != null ? " · heading " + v.hdg + "°" : ""} · last fix ${Math.max(0, Math.round(state.now - v.ts))} s ago` +
      `${incs.length ? "<br>" + incs.map((i) => `<span style="color:#ff4d4f">${esc(i.kind)} ${esc(i.zone_name || "")}</span>`).join("<br>") : ""}`
      : `<b>${esc(state.selected)}</b> not on the map now`;
  }
  function renderAll() {
    renderClasses(); renderFeed(); renderTasks(); renderCounts(); renderSelection(); restyleZones();
    canvasLayer.redraw();
  }

  // ---------------------------------------------------------------- selection and tracks
  function focusVehicle(id, fallback) {
    const v = vehicleById(id), z = Math.max(map.getZoom(), 15);
    if (v && v.lat != null) map.setView([v.lat, v.lon], z, {animate: false});
    else if (fallback && fallback.lat != null) map.setView([fallback.lat, fallback.lon], z, {animate: false});
    else return false;
    state.selected = id;
    trackLine.setLatLngs([]); stats.trackPoints = 0;
    fetch(`/api/v1/onemap/vehicles/${encodeURIComponent(id)}/track`).then((r) => r.ok ? r.json() : null).then((doc) => {
      if (!doc || state.selected !== id) return;
      trackLine.setLatLngs(doc.points.map((p) => [p[1], p[2]]));
      stats.trackPoints = doc.points.length;
    }).catch(() => {});
    renderSelection(); canvasLayer.redraw();
    return true;
  }
  function focusAlert(a) {
    if (a.vehicle_id) return focusVehicle(a.vehicle_id, a);
    if (a.lat != null) { map.setView([a.lat, a.lon], Math.max(map.getZoom(), 15), {animate: false}); return true; }
    return false;
  }
  function focusTask(t) {
    if (t.lat == null) return false;
    map.setView([t.lat, t.lon], Math.max(map.getZoom(), 15), {animate: false});
    L.popup().setLatLng([t.lat, t.lon]).setContent(
      `<b>${esc(t.name || t.code || t.id)}</b> (${esc(t.level || "")})<br>${esc(t.state || "")}${t.overdue ? ' · <b style="color:#c00">overdue</b>' : ""}` +
      `${t.description ? "<br>" + esc(t.description) : ""}${t.agency ? "<br>" + esc(t.agency) : ""}${t.expected ? "<br>due " + esc(fmtDate(t.expected)) : ""}`).openOn(map);
    return true;
  }

  // ---------------------------------------------------------------- data
  function applySnapshot(s) {
    if (!map) init(s.config);
    state.classes = s.classes; state.seq = s.seq; state.now = s.now;
    state.vehicles.clear(); state.byId.clear();
    for (const [slot, id, cls, lat, lon, spd, hdg, age] of s.vehicles) {
      state.vehicles.set(slot, {slot, id, cls, lat, lon, spd, hdg, ts: s.now - age});
      state.byId.set(id, slot);
    }
    state.alerts = s.alerts.slice(0, FEED_MAX); state.alertIds = new Set(state.alerts.map((a) => a.alert_id));
    state.alerts.forEach((a) => { a._t = Date.parse(a.ts) || 0; });
    state.incidents = new Map(s.incidents.map((i) => [i.id, i]));
    state.tasks = new Map(s.tasks.map((t) => [t.id, t]));
    state.zones = s.zones;
    stats.snapshots++;
    drawZones(); renderAll();
  }
  function applyDelta(d) {
    if (d.seq !== state.seq + 1) { reconnect(); return; }  // missed something: start again from a snapshot
    state.seq = d.seq; state.now = d.now; stats.deltas++;
    for (const slot of d.g || []) {
      const v = state.vehicles.get(slot);
      if (v) { state.vehicles.delete(slot); if (state.byId.get(v.id) === slot) state.byId.delete(v.id); }
    }
    for (const [slot, id, cls] of d.nv || []) {
      const v = state.vehicles.get(slot);
      if (v && v.id === id) v.cls = cls;
      else { state.vehicles.set(slot, {slot, id, cls, lat: null, lon: null, spd: null, hdg: null, ts: 0}); state.byId.set(id, slot); }
    }
    const sel = state.selected;
    for (const [slot, lat, lon, spd, hdg, age] of d.v || []) {
      const v = state.vehicles.get(slot);
      if (!v) continue;
      v.lat = lat; v.lon = lon; v.spd = spd; v.hdg = hdg; v.ts = d.now - age;
      if (v.id === sel) trackLine.addLatLng([lat, lon]);
    }
    for (const a of d.a || []) {  // newest first by event time (arrival order is not time order)
      if (state.alertIds.has(a.alert_id)) continue;
      a._t = Date.parse(a.ts) || 0;
      let i = 0;
      while (i < state.alerts.length && state.alerts[i]._t > a._t) i++;
      state.alertIds.add(a.alert_id); state.alerts.splice(i, 0, a);
    }
    while (state.alerts.length > FEED_MAX) state.alertIds.delete(state.alerts.pop().alert_id);
    for (const i of d.io || []) state.incidents.set(i.id, i);
    for (const id of d.ic || []) state.incidents.delete(id);
    for (const t of d.t || []) state.tasks.set(t.id, t);
    for (const id of d.tc || []) state.tasks.delete(id);
    if (d.zones) { state.zones = d.zones; drawZones(); }
    if (d.a || d.io || d.ic) renderFeed();
    if (d.t || d.tc) renderTasks();
    if (d.io || d.ic) restyleZones();
    if (d.nv || d.g) renderClasses();
    renderCounts(); renderSelection(); canvasLayer.redraw();
  }
  function connect() {
    const s = source = new EventSource("/api/v1/onemap/stream");
    s.addEventListener("snapshot", (e) => applySnapshot(JSON.parse(e.data)));
    s.addEventListener("delta", (e) => applyDelta(JSON.parse(e.data)));
    s.onopen = () => { stats.connected = true; setStatus(true); };
    s.onerror = () => {
      stats.connected = false; setStatus(false);
      // The browser retries a dropped stream itself, but not a refused one (401/403 after a key change, 503):
      // check access again through the snapshot.
      if (s.readyState === EventSource.CLOSED && source === s) { source = null; setTimeout(start, RESTART_MS); }
    };
  }
  function reconnect() { if (source) source.close(); connect(); }
  function setStatus(up, text) {
    const el = $("status");
    el.className = "status " + (up ? "up" : "down");
    el.textContent = text || (up ? "live" : "reconnecting…");
  }

  // ---------------------------------------------------------------- access: the operator's key
  const KEY_COOKIE = "citywatch_key", RESTART_MS = 3000;
  function cookieTail() { return "; path=/; SameSite=Strict" + (location.protocol === "https:" ? "; Secure" : ""); }
  function hasKey() {
    return document.cookie.split(";").some((c) => { const [k, v] = c.trim().split("="); return k === KEY_COOKIE && !!v; });
  }
  function storeKey(key) { document.cookie = KEY_COOKIE + "=" + encodeURIComponent(key) + cookieTail(); }  // session cookie
  function clearKey() { document.cookie = KEY_COOKIE + "=; max-age=0" + cookieTail(); }
  function askKey(reason) {
    if (source) { source.close(); source = null; }
    stats.connected = false; forget();
    setStatus(false, "key needed");
    $("signout").hidden = true;
    $("signin-msg").textContent = reason;
    $("signin").hidden = false;
    $("signin-key").focus();
  }
  // Drop everything shown (after a refusal the data must not stay on screen).
  function forget() {
    state.vehicles.clear(); state.byId.clear(); state.alerts = []; state.alertIds = new Set();
    state.incidents.clear(); state.tasks.clear(); state.zones = []; state.selected = null; state.seq = -1;
    if (map) { trackLine.setLatLngs([]); map.closePopup(); drawZones(); renderAll(); }
  }
  // Check access with the snapshot (an answer with a status, which EventSource never shows), then stream.
  async function start() {
    if (source) { source.close(); source = null; }
    let r;
    try {
      r = await fetch("/api/v1/onemap/snapshot", {cache: "no-store", credentials: "same-origin"});
    } catch (e) {
      setStatus(false); setTimeout(start, RESTART_MS); return;  // the worker is not reachable (yet)
    }
    if (r.status === 401 || r.status === 403) {
      const doc = await r.json().catch(() => ({}));
      if (hasKey()) clearKey();  // a key that does not work is not kept
      askKey(doc.reason ? doc.reason[0].toUpperCase() + doc.reason.slice(1) + "." : "An operator API key is needed.");
      return;
    }
    if (!r.ok) { setStatus(false); setTimeout(start, RESTART_MS); return; }  // e.g. 503: try again
    $("signin").hidden = true; $("signin-msg").textContent = "";
    $("signout").hidden = !hasKey();
    applySnapshot(await r.json());
    connect();
  }
  $("signin").addEventListener("submit", (e) => {
    e.preventDefault();
    const input = $("signin-key"), key = input.value.trim();
    input.value = "";
    if (!key) return;
    storeKey(key);
    $("signin-msg").textContent = "checking…";
    start();
  });
  $("signout").addEventListener("click", () => {
    if (source) { source.close(); source = null; }
    clearKey();
    location.reload();  // nothing of the session stays in the page
  });

  // ---------------------------------------------------------------- set-up
  function init(config) {
    state.config = config;
    timeFmt = new Intl.DateTimeFormat("en-GB", {timeZone: config.city.tz, hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false});
    $("city").textContent = config.city.name;
    map = L.map("map", {preferCanvas: true, zoomSnap: 0.5, minZoom: 8, maxZoom: config.tile_max_zoom || 19,
      attributionControl: !!config.tile_url});
    if (config.tile_url) L.tileLayer(config.tile_url, {attribution: config.tile_attribution, maxZoom: config.tile_max_zoom}).addTo(map);
    const b = config.city.bounds;
    map.fitBounds([[b.lat_min, b.lon_min], [b.lat_max, b.lon_max]]);
    L.control.scale({imperial: false}).addTo(map);
    map.createPane("vehicles").style.zIndex = 450;
    canvasLayer = new CanvasLayer().addTo(map);
    trackLine = L.polyline([], {color: "#ffffff", weight: 2, opacity: 0.85, dashArray: "4 3", interactive: false}).addTo(map);
    map.on("click", (e) => {
      const hit = canvasLayer.hit(e.containerPoint);
      if (hit && hit.vehicle) focusVehicle(hit.vehicle.id);
      else if (hit && hit.task) focusTask(hit.task);
    });
    $("feed").addEventListener("click", (e) => {
      const li = e.target.closest("li[data-alert-id]");
      const a = li && state.alerts.find((x) => x.alert_id === li.dataset.alertId);
      if (a) focusAlert(a);
    });
    $("tasks").addEventListener("click", (e) => {
      const li = e.target.closest("li[data-task-id]");
      const t = li && state.tasks.get(li.dataset.taskId);
      if (t) focusTask(t);
    });
    $("classes").addEventListener("change", (e) => {
      const c = e.target.dataset.class;
      if (e.target.checked) state.hiddenClasses.delete(c); else state.hiddenClasses.add(c);
      renderFeed(); canvasLayer.redraw();
    });
    $("rules").addEventListener("change", (e) => {
      const r = e.target.dataset.rule;
      if (e.target.checked) state.shownRules.add(r); else state.shownRules.delete(r);
      drawZones();
    });
    $("zone-filter").addEventListener("change", (e) => {
      state.zoneFilter = e.target.value;
      const layer = zoneLayers.get(state.zoneFilter);
      if (layer) map.fitBounds(layer.getBounds(), {maxZoom: 16});
      restyleZones(); renderFeed(); canvasLayer.redraw();
    });
    $("search").addEventListener("submit", (e) => {
      e.preventDefault();
      const id = $("search-id").value.trim();
      $("search-msg").textContent = !id ? "" : focusVehicle(id) ? "" : `${id} is not on the map`;
    });
  }

  window.onemap = {state, stats, focusVehicle, get map() { return map; },
    drawNow: () => { if (canvasLayer) canvasLayer._draw(); return stats; }};
  start();
})();
