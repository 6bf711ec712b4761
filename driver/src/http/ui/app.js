/*
 * sluice web UI (app.js): a dependency-free single-page app embedded in the driver binary and
 * served at /ui/. It reads the driver's REST API v1 (../api/v1/…) and its server-sent event stream.
 *
 * Pages (hash routes, rendered into <main id="app">):
 *   #/             Queries list: every query with status, rates, latest batch and watermark;
 *                  refreshed every 2 s and on every event.
 *   #/query/<id>   Query page: header (#query-status) with a Stop button (#stop-query), the
 *                  exception if it failed, live SVG line charts from recentProgress
 *                  (<figure class="chart" id="chart-<key>" data-points="N">), a table of the last
 *                  progress and its raw JSON. It is updated from events, and query info is
 *                  polled every 2 s in case events are missed.
 *   #/executors    Executors table (<tr data-executor="<id>">), refreshed every 2 s.
 *
 * Shared parts: one fetch wrapper (adds the bearer token kept in sessionStorage 'sluice-token'; on 401
 * it shows the inline token form, then retries), the error area (#error), which lists every failed
 * call until it succeeds again, and one event-stream connection. The stream is read with fetch() and
 * a ReadableStream rather than EventSource so that it can send the Authorization header; it
 * reconnects with backoff.
 *
 * The pure helpers (formatting, SSE parsing, chart series and SVG, table HTML) are exported through
 * `module.exports` when loaded in node for tests. The DOM code runs only when `document` exists.
 */
'use strict';
(function () {
  // ---------------------------------------------------------------- formatting

  const NF_INT = new Intl.NumberFormat('en-US', { maximumFractionDigits: 0 });
  const NF_1 = new Intl.NumberFormat('en-US', { minimumFractionDigits: 1, maximumFractionDigits: 1 });
  const NF_AXIS = new Intl.NumberFormat('en-US', { maximumFractionDigits: 2 });
  const DASH = '—';

  const isNum = (v) => typeof v === 'number' && Number.isFinite(v);
  const fmtInt = (v) => (isNum(v) ? NF_INT.format(v) : DASH);
  const fmtRate = (v) => (isNum(v) ? NF_1.format(v) : DASH);
  const fmtMs = (v) => (isNum(v) ? NF_INT.format(v) + ' ms' : DASH);
  const fmtSecs = (v) => (isNum(v) ? NF_1.format(v) + ' s' : DASH);

  function fmtBytes(v) {
    if (!isNum(v)) return DASH;
    const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
    let x = Math.abs(v);
    let i = 0;
    while (x >= 1024 && i < units.length - 1) { x /= 1024; i++; }
    return (v < 0 ? '-' : '') + (i === 0 ? NF_INT.format(x) : NF_1.format(x)) + ' ' + units[i];
  }

  /** Short axis labels: 950, 12.5k, 3.2M. */
  function fmtCompact(v) {
    const a = Math.abs(v);
    if (a >= 1e9) return NF_AXIS.format(v / 1e9) + 'G';
    if (a >= 1e6) return NF_AXIS.format(v / 1e6) + 'M';
    if (a >= 1e4) return NF_AXIS.format(v / 1e3) + 'k';
    return NF_AXIS.format(v);
  }

  const shortId = (id) => (id ? String(id).slice(0, 8) : DASH);

  function esc(v) {
    return String(v == null ? '' : v).replace(/[&<>"']/g, (c) =>
      ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]);
  }

  // ---------------------------------------------------------------- routing and SSE parsing

  /** '#/query/<id>' → {page:'query', id}; '#/executors' → {page:'executors'}; else queries. */
  function parseRoute(hash) {
    const path = String(hash || '').replace(/^#/, '');
    const m = /^\/query\/([^/?#]+)/.exec(path);
    if (m) return { page: 'query', id: decodeURIComponent(m[1]) };
    if (/^\/executors\/?$/.test(path)) return { page: 'executors' };
    return { page: 'queries' };
  }

  /**
   * An incremental text/event-stream parser: feed it decoded chunks; it calls
   * onEvent({type, data}) when a blank line ends an event. Comment lines (':…') are ignored.
   */
  function sseParser(onEvent) {
    let buf = '';
    let type = '';
    let data = [];
    function line(l) {
      if (l === '') {
        if (data.length) onEvent({ type: type || 'message', data: data.join('\n') });
        type = '';
        data = [];
        return;
      }
      if (l[0] === ':') return;
      const i = l.indexOf(':');
      const field = i < 0 ? l : l.slice(0, i);
      let value = i < 0 ? '' : l.slice(i + 1);
      if (value[0] === ' ') value = value.slice(1);
      if (field === 'event') type = value;
      else if (field === 'data') data.push(value);
    }
    return function push(chunk) {
      buf += chunk;
      const lines = buf.split('\n');
      buf = lines.pop();
      for (const l of lines) line(l.endsWith('\r') ? l.slice(0, -1) : l);
    };
  }

  // ---------------------------------------------------------------- progress data

  const MAX_PROGRESS = 100;
  // Like Spark's UI, leave out reports whose watermark is still the initial 1970-01-01T00:00:00Z
  // (the gap would be ~55 years and flatten the chart). Set to false to chart every watermark.
  const SKIP_EPOCH_WATERMARK = true;
  const PHASE_ORDER = ['latestOffset', 'getBatch', 'walCommit', 'queryPlanning', 'addBatch', 'commitOffsets', 'recovery'];
  const PALETTE = ['#2563eb', '#dc2626', '#16a34a', '#d97706', '#7c3aed', '#0891b2', '#db2777', '#4b5563', '#65a30d'];

  const progressKey = (p) => `${p.runId}:${p.batchId}:${p.timestamp}`;

  /** Merges progress reports by (runId, batchId, timestamp), oldest first, keeping the last 100. */
  function mergeProgress(list, more) {
    const byKey = new Map();
    for (const p of list.concat(more)) {
      if (p && typeof p === 'object' && !byKey.has(progressKey(p))) byKey.set(progressKey(p), p);
    }
    const time = (p) => Date.parse(p.timestamp) || 0;
    return [...byKey.values()]
      .sort((a, b) => time(a) - time(b) || (a.batchId || 0) - (b.batchId || 0))
      .slice(-MAX_PROGRESS);
  }

  /** Seconds from the global watermark to the batch's trigger time, or undefined. */
  function watermarkGap(p) {
    const wm = p.eventTime && p.eventTime.watermark;
    if (!wm) return undefined;
    const t = Date.parse(p.timestamp);
    const w = Date.parse(wm);
    if (!Number.isFinite(t) || !Number.isFinite(w)) return undefined;
    if (SKIP_EPOCH_WATERMARK && w <= 0) return undefined;
    return (t - w) / 1000;
  }

  /** Σ stateOperators[].field, or undefined for a stateless report. */
  const stateSum = (field) => (p) =>
    Array.isArray(p.stateOperators) && p.stateOperators.length
      ? p.stateOperators.reduce((s, op) => s + (isNum(op[field]) ? op[field] : 0), 0)
      : undefined;

  const single = (name, value) => () => [{ name, value }];

  /** One line per durationMs key except triggerExecution, in Spark's phase order. */
  function phaseSeries(list) {
    const keys = new Set();
    for (const p of list) for (const k of Object.keys(p.durationMs || {})) if (k !== 'triggerExecution') keys.add(k);
    const rank = (k) => (PHASE_ORDER.includes(k) ? PHASE_ORDER.indexOf(k) : PHASE_ORDER.length);
    return [...keys]
      .sort((a, b) => rank(a) - rank(b) || a.localeCompare(b))
      .map((k) => ({ name: k, value: (p) => (p.durationMs || {})[k] }));
  }

  /** The charts of the query page: key (→ id chart-<key>), caption, value format, series. */
  const CHART_DEFS = [
    { key: 'inputRate', title: 'Input rate (rows/s)', fmt: fmtRate, series: single('input rows/s', (p) => p.inputRowsPerSecond) },
    { key: 'processRate', title: 'Process rate (rows/s)', fmt: fmtRate, series: single('processed rows/s', (p) => p.processedRowsPerSecond) },
    { key: 'inputRows', kind: 'count', title: 'Input rows', fmt: fmtInt, series: single('input rows', (p) => p.numInputRows) },
    { key: 'batchDuration', kind: 'count', title: 'Batch duration (ms)', fmt: fmtMs, series: single('batch duration', (p) => p.batchDuration) },
    { key: 'operationDuration', kind: 'count', title: 'Operation duration by phase (ms)', fmt: fmtMs, series: phaseSeries, legend: true },
    { key: 'watermarkGap', title: 'Global watermark gap (s)', fmt: fmtSecs, series: single('watermark gap', watermarkGap) },
    { key: 'stateRowsTotal', kind: 'count', title: 'State rows (total)', fmt: fmtInt, series: single('rows total', stateSum('numRowsTotal')) },
    { key: 'stateRowsUpdated', kind: 'count', title: 'State rows updated', fmt: fmtInt, series: single('rows updated', stateSum('numRowsUpdated')) },
    { key: 'stateRowsRemoved', kind: 'count', title: 'State rows removed', fmt: fmtInt, series: single('rows removed', stateSum('numRowsRemoved')) },
    { key: 'stateMemory', kind: 'bytes', title: 'State memory used', fmt: fmtBytes, axis: fmtBytes, series: single('memory used', stateSum('memoryUsedBytes')) },
    { key: 'droppedByWatermark', kind: 'count', title: 'Rows dropped by watermark', fmt: fmtInt, series: single('rows dropped', stateSum('numRowsDroppedByWatermark')) },
  ];

  /** Series of a chart: [{name, color, points: [{i (index in list), p, y}]}]; missing values skipped. */
  function chartData(def, list) {
    return def.series(list).map((s, n) => ({
      name: s.name,
      color: PALETTE[n % PALETTE.length],
      points: list.map((p, i) => ({ i, p, y: s.value(p) })).filter((pt) => isNum(pt.y)),
    }));
  }

  /** Round tick values covering [min, max]: {lo, hi, ticks}; steps of at least minStep. */
  function niceTicks(min, max, count = 4, minStep = 0) {
    if (!(max > min)) max = min + 1;
    const raw = (max - min) / count;
    const mag = Math.pow(10, Math.floor(Math.log10(raw)));
    const norm = raw / mag;
    const step = Math.max(minStep, (norm <= 1 ? 1 : norm <= 2 ? 2 : norm <= 2.5 ? 2.5 : norm <= 5 ? 5 : 10) * mag);
    const lo = Math.floor(min / step) * step;
    const hi = Math.ceil(max / step) * step;
    const ticks = [];
    for (let t = lo; t <= hi + step / 1e6; t += step) ticks.push(Number(t.toPrecision(12)));
    return { lo, hi, ticks };
  }

  /** Up to `max` evenly spread indexes into a list of n. */
  function xTickIndexes(n, max = 5) {
    const count = Math.min(n, max);
    if (count <= 1) return n ? [0] : [];
    const out = new Set();
    for (let k = 0; k < count; k++) out.add(Math.round((k * (n - 1)) / (count - 1)));
    return [...out];
  }

  /** Y ticks of a chart: whole numbers for counts, whole KiB/MiB/… steps for bytes. */
  function yTicks(def, min, max) {
    if (def.kind !== 'bytes') return niceTicks(min, max, 4, def.kind === 'count' ? 1 : 0);
    const unit = Math.pow(1024, Math.max(0, Math.floor(Math.log(Math.max(Math.abs(min), Math.abs(max), 1)) / Math.log(1024))));
    const r = niceTicks(min / unit, max / unit);
    return { lo: r.lo * unit, hi: r.hi * unit, ticks: r.ticks.map((v) => v * unit) };
  }

  const CH = { w: 440, h: 210, l: 58, r: 14, t: 12, b: 34 };

  /** The SVG of a line chart: grid, y ticks, x ticks (batch ids), a polyline and a circle per point. */
  function chartSvg(def, list, series) {
    const { w, h, l, r, t, b } = CH;
    const ys = series.flatMap((s) => s.points.map((pt) => pt.y));
    const { lo, hi, ticks } = yTicks(def, Math.min(0, ...ys), Math.max(0, ...ys));
    const n = list.length;
    const x = (i) => (n > 1 ? l + (i / (n - 1)) * (w - l - r) : l + (w - l - r) / 2);
    const y = (v) => t + (1 - (v - lo) / (hi - lo)) * (h - t - b);
    const f = (v) => v.toFixed(1);
    const axisFmt = def.axis || fmtCompact;
    const out = [`<svg class="chart-svg" viewBox="0 0 ${w} ${h}" role="img" aria-label="${esc(def.title)}">`];
    for (const v of ticks) {
      out.push(`<line class="grid" x1="${l}" x2="${w - r}" y1="${f(y(v))}" y2="${f(y(v))}"/>`,
        `<text class="tick" x="${l - 6}" y="${f(y(v) + 4)}" text-anchor="end">${esc(axisFmt(v))}</text>`);
    }
    out.push(`<line class="axis" x1="${l}" x2="${l}" y1="${t}" y2="${h - b}"/>`,
      `<line class="axis" x1="${l}" x2="${w - r}" y1="${h - b}" y2="${h - b}"/>`);
    for (const i of xTickIndexes(n)) {
      out.push(`<line class="axis" x1="${f(x(i))}" x2="${f(x(i))}" y1="${h - b}" y2="${h - b + 4}"/>`,
        `<text class="tick" x="${f(x(i))}" y="${h - b + 16}" text-anchor="middle">${esc(list[i].batchId)}</text>`);
    }
    out.push(`<text class="axis-label" x="${w - r}" y="${h - 3}" text-anchor="end">batch</text>`);
    for (const s of series) {
      // One polyline per run of consecutive reports, so missing values leave a gap.
      let run = [];
      const flush = () => {
        if (run.length > 1) {
          out.push(`<polyline class="line" fill="none" stroke="${s.color}" points="${run.map((pt) => `${f(x(pt.i))},${f(y(pt.y))}`).join(' ')}"/>`);
        }
        run = [];
      };
      s.points.forEach((pt, k) => {
        if (k && pt.i !== s.points[k - 1].i + 1) flush();
        run.push(pt);
      });
      flush();
      for (const pt of s.points) {
        const label = `${series.length > 1 ? s.name + ': ' : ''}${def.fmt(pt.y)} (batch ${pt.p.batchId}, ${pt.p.timestamp})`;
        out.push(`<circle class="dot" cx="${f(x(pt.i))}" cy="${f(y(pt.y))}" r="2.5" fill="${s.color}"><title>${esc(label)}</title></circle>`);
      }
    }
    out.push('</svg>');
    return out.join('');
  }

  function legendHtml(series) {
    return '<ul class="legend">' + series.map((s) =>
      `<li><span class="swatch" style="background:${s.color}"></span>${esc(s.name)}</li>`).join('') + '</ul>';
  }

  /**
   * A chart as <figure class="chart" id="chart-<key>" data-points="N">, where N is the number of
   * progress reports with at least one point drawn (0 → "no data").
   */
  function renderChart(def, list) {
    const series = chartData(def, list).filter((s) => s.points.length);
    const xs = new Set();
    for (const s of series) for (const pt of s.points) xs.add(pt.i);
    const head = `<figure class="chart" id="chart-${def.key}" data-points="${xs.size}"><figcaption>${esc(def.title)}</figcaption>`;
    if (!xs.size) return head + '<div class="no-data">no data</div></figure>';
    return head + chartSvg(def, list, series) + (def.legend ? legendHtml(series) : '') + '</figure>';
  }

  // ---------------------------------------------------------------- table HTML

  const queryState = (q) => (q.isActive ? 'active' : q.exception ? 'failed' : 'terminated');
  const badge = (state) => `<span class="badge badge-${esc(state)}">${esc(state)}</span>`;
  const firstLine = (s) => String(s).split('\n')[0];
  const queryLink = (id, text) => `<a href="#/query/${encodeURIComponent(id)}">${text}</a>`;

  function queriesTable(queries) {
    if (!queries.length) return '<p class="muted">No queries yet.</p>';
    const rows = queries.map((q) => {
      const lp = q.lastProgress || {};
      const wm = lp.eventTime && lp.eventTime.watermark;
      const status = (q.status && q.status.message) || DASH;
      return `<tr data-query="${esc(q.id)}" class="clickable">
        <td>${queryLink(q.id, q.name ? esc(q.name) : DASH)}</td>
        <td class="mono">${queryLink(q.id, esc(q.id))}</td>
        <td class="mono" title="${esc(q.runId)}">${esc(shortId(q.runId))}</td>
        <td>${esc(status)}</td>
        <td>${badge(queryState(q))}</td>
        <td class="num">${fmtRate(lp.inputRowsPerSecond)}</td>
        <td class="num">${fmtRate(lp.processedRowsPerSecond)}</td>
        <td class="num">${isNum(lp.batchId) ? fmtInt(lp.batchId) : DASH}</td>
        <td class="mono">${wm ? esc(wm) : DASH}</td>
        <td class="exception-cell" title="${esc(q.exception || '')}">${q.exception ? esc(firstLine(q.exception)) : ''}</td>
      </tr>`;
    });
    return `<table class="table" id="queries-table-el"><thead><tr>
      <th>Name</th><th>ID</th><th>Run ID</th><th>Status</th><th>State</th>
      <th class="num">Input rows/s</th><th class="num">Processed rows/s</th>
      <th class="num">Latest batch</th><th>Watermark</th><th>Exception</th>
      </tr></thead><tbody>${rows.join('')}</tbody></table>`;
  }

  function executorsTable(executors) {
    if (!executors.length) return '<p class="muted">No executors registered.</p>';
    const rows = executors.map((e) => `<tr data-executor="${esc(e.id)}">
        <td class="mono">${esc(e.id)}</td>
        <td class="mono">${esc(e.address || DASH)}</td>
        <td>${badge(e.state || 'unknown')}</td>
        <td class="num">${fmtInt(e.slots)}</td>
        <td class="num">${fmtInt(e.statePartitions)}</td>
        <td class="num">${fmtInt(e.tasksRunning)}</td>
        <td class="num">${fmtInt(e.tasksSucceeded)}</td>
        <td class="num">${fmtInt(e.tasksFailed)}</td>
        <td class="num">${fmtBytes(e.memoryBytes)}</td>
      </tr>`);
    return `<table class="table" id="executors-table-el"><thead><tr>
      <th>ID</th><th>Address</th><th>State</th><th class="num">Slots</th><th class="num">State partitions</th>
      <th class="num">Tasks running</th><th class="num">Tasks succeeded</th><th class="num">Tasks failed</th>
      <th class="num">Memory</th></tr></thead><tbody>${rows.join('')}</tbody></table>`;
  }

  /** The query header; #query-status holds exactly status.message. */
  function queryHeader(q) {
    const parts = Object.entries(q.statePartitions || {}).map(([ex, n]) => `${esc(ex)}: ${fmtInt(n)}`);
    return `<h1>${q.name ? esc(q.name) : '<span class="muted">(unnamed query)</span>'} ${badge(queryState(q))}</h1>
      <dl class="facts">
        <dt>Status</dt><dd id="query-status">${esc((q.status && q.status.message) || '')}</dd>
        <dt>ID</dt><dd class="mono" id="query-id">${esc(q.id)}</dd>
        <dt>Run ID</dt><dd class="mono" id="query-run-id">${esc(q.runId)}</dd>
        <dt>Restarts</dt><dd>${fmtInt(q.restarts)}</dd>
        <dt>Batches retried</dt><dd>${fmtInt(q.batchesRetried)}</dd>
        <dt>State partitions</dt><dd>${parts.length ? parts.join(', ') : DASH}</dd>
      </dl>`;
  }

  /** Key/value table of one progress report. */
  function lastProgressTable(p) {
    if (!p) return '<p class="muted">No batch has run yet.</p>';
    const rows = [
      ['Batch id', fmtInt(p.batchId)],
      ['Timestamp', esc(p.timestamp)],
      ['Input rows', fmtInt(p.numInputRows)],
      ['Input rate (rows/s)', fmtRate(p.inputRowsPerSecond)],
      ['Process rate (rows/s)', fmtRate(p.processedRowsPerSecond)],
      ['Batch duration', fmtMs(p.batchDuration)],
    ];
    for (const s of phaseSeries([p])) rows.push([`Duration: ${esc(s.name)}`, fmtMs(s.value(p))]);
    if (p.durationMs && isNum(p.durationMs.triggerExecution)) rows.push(['Duration: triggerExecution', fmtMs(p.durationMs.triggerExecution)]);
    if (p.eventTime && p.eventTime.watermark) rows.push(['Watermark', esc(p.eventTime.watermark)]);
    if (Array.isArray(p.stateOperators) && p.stateOperators.length) {
      rows.push(['State rows (total)', fmtInt(stateSum('numRowsTotal')(p))],
        ['State memory', fmtBytes(stateSum('memoryUsedBytes')(p))]);
    }
    if (p.sink) rows.push(['Sink output rows', fmtInt(p.sink.numOutputRows)]);
    return '<table class="table kv" id="last-progress-table"><tbody>' +
      rows.map(([k, v]) => `<tr><th>${k}</th><td class="num">${v}</td></tr>`).join('') + '</tbody></table>';
  }

  const pure = {
    fmtInt, fmtRate, fmtMs, fmtSecs, fmtBytes, fmtCompact, esc, parseRoute, sseParser, mergeProgress,
    watermarkGap, stateSum, phaseSeries, CHART_DEFS, chartData, niceTicks, xTickIndexes, renderChart,
    queriesTable, executorsTable, queryHeader, lastProgressTable, queryState,
  };
  if (typeof module !== 'undefined' && module.exports) module.exports = pure;
  if (typeof document === 'undefined') return;

  // ================================================================ browser only below

  const $ = (sel) => document.querySelector(sel);
  const sleep = (ms) => new Promise((res) => setTimeout(res, ms));
  const POLL_MS = 2000;
  const TOKEN_KEY = 'sluice-token';

  // ---------------------------------------------------------------- error area

  const errors = new Map(); // source → message; a source's error clears when its next call succeeds

  function setError(source, msg) { errors.set(source, msg); renderErrors(); }
  function clearError(source) { if (errors.delete(source)) renderErrors(); }

  function renderErrors() {
    const el = $('#error');
    el.hidden = errors.size === 0;
    el.innerHTML = [...errors].map(([src, msg]) =>
      `<div class="error-line" data-source="${esc(src)}"><span class="error-text">${esc(msg)}</span>` +
      `<button type="button" class="dismiss" data-dismiss="${esc(src)}" aria-label="dismiss">×</button></div>`).join('');
  }

  // ---------------------------------------------------------------- API access and auth

  function getToken() {
    try { return sessionStorage.getItem(TOKEN_KEY) || ''; } catch (_) { return ''; }
  }
  function setToken(t) {
    try { sessionStorage.setItem(TOKEN_KEY, t); } catch (_) { /* storage disabled: token lives for this call only */ }
  }

  let tokenPrompt = null; // {promise, resolve} while the token form is shown

  /** Shows the token form; resolves once the user has entered a token. */
  function askForToken(message) {
    setError('auth', `Authentication required: ${message}`);
    $('#auth-message').textContent = message;
    $('#auth-form').hidden = false;
    $('#auth-token').focus();
    if (!tokenPrompt) {
      let resolve;
      const promise = new Promise((res) => { resolve = res; });
      tokenPrompt = { promise, resolve };
    }
    return tokenPrompt.promise;
  }

  function onTokenSubmit(ev) {
    ev.preventDefault();
    const input = $('#auth-token');
    const token = input.value.trim();
    if (!token) return;
    setToken(token);
    input.value = '';
    $('#auth-form').hidden = true;
    clearError('auth');
    const p = tokenPrompt;
    tokenPrompt = null;
    if (p) p.resolve(token);
  }

  const apiUrl = (path) => new URL('../api/v1/' + path, location.href).toString();

  /** fetch() of an API path with the bearer token; on 401 asks for a token and retries. */
  async function apiFetch(path, opts = {}) {
    for (;;) {
      const token = getToken();
      const headers = new Headers(opts.headers || {});
      if (token) headers.set('Authorization', 'Bearer ' + token);
      const res = await fetch(apiUrl(path), { ...opts, headers });
      if (res.status !== 401) return res;
      const msg = await errorText(res);
      await askForToken(token ? `token rejected (${msg})` : msg);
    }
  }

  /** The one-line message of an error response ({"error": "..."} or its text). */
  async function errorText(res) {
    const text = await res.text().catch(() => '');
    try {
      const j = JSON.parse(text);
      if (j && typeof j.error === 'string') return j.error;
    } catch (_) { /* not JSON: use the text */ }
    return text.trim().split('\n')[0] || res.statusText || 'request failed';
  }

  /** Calls the API and returns the JSON, or null after showing the error under `source`. */
  async function load(source, path, opts) {
    const what = `${(opts && opts.method) || 'GET'} ${path}`;
    let res;
    try {
      res = await apiFetch(path, opts);
    } catch (e) {
      setError(source, `${what}: network error: ${e.message}`);
      return null;
    }
    if (!res.ok) {
      setError(source, `${what}: HTTP ${res.status}: ${await errorText(res)}`);
      return null;
    }
    try {
      const data = await res.json();
      clearError(source);
      return data;
    } catch (e) {
      setError(source, `${what}: bad JSON: ${e.message}`);
      return null;
    }
  }

  /** Runs fn now and every ms after it finishes; now() runs it again soon (coalesced). */
  function poller(fn, ms) {
    let timer = null;
    let stopped = false;
    let running = false;
    let again = false;
    async function run() {
      if (stopped) return;
      if (running) { again = true; return; }
      clearTimeout(timer);
      running = true;
      try { await fn(); } catch (e) { setError('ui', `UI error: ${e.message}`); }
      running = false;
      if (stopped) return;
      if (again) { again = false; run(); } else timer = setTimeout(run, ms);
    }
    run();
    return { now: run, stop() { stopped = true; clearTimeout(timer); } };
  }

  // ---------------------------------------------------------------- event stream

  let page = null; // current page: {stop(), onEvent(type, data)}

  function setStreamStatus(text, live) {
    const el = $('#stream-status');
    el.textContent = text;
    el.classList.toggle('live', !!live);
  }

  function dispatch(type, data) {
    try { if (page) page.onEvent(type, data); } catch (e) { setError('ui', `UI error handling ${type}: ${e.message}`); }
  }

  /** Reads one stream until it ends; aborts it if nothing (not even a keep-alive) arrives for 45 s. */
  async function readStream(res, ctrl) {
    const reader = res.body.getReader();
    const decoder = new TextDecoder();
    const push = sseParser((ev) => {
      let data = ev.data;
      try { data = JSON.parse(ev.data); } catch (_) { /* keep the text */ }
      dispatch(ev.type, data);
    });
    let watchdog = setTimeout(() => ctrl.abort(), 45000);
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) return;
        clearTimeout(watchdog);
        watchdog = setTimeout(() => ctrl.abort(), 45000);
        push(decoder.decode(value, { stream: true }));
      }
    } finally {
      clearTimeout(watchdog);
    }
  }

  /** Keeps one connection to ../api/v1/events, reconnecting with exponential backoff (1 s … 30 s). */
  async function runEventStream() {
    let delay = 1000;
    for (;;) {
      setStreamStatus('connecting…');
      const started = Date.now();
      const ctrl = new AbortController();
      try {
        const res = await apiFetch('events', { headers: { Accept: 'text/event-stream' }, cache: 'no-store', signal: ctrl.signal });
        if (!res.ok) throw new Error(`HTTP ${res.status}: ${await errorText(res)}`);
        if (!res.body) throw new Error('this browser cannot read streamed responses');
        clearError('events');
        setStreamStatus('live', true);
        dispatch('open', null);
        await readStream(res, ctrl);
      } catch (e) {
        const msg = ctrl.signal.aborted ? 'no data for 45 s' : e.message;
        setError('events', `GET events: ${msg} (live updates paused, retrying)`);
      }
      if (Date.now() - started > 10000) delay = 1000;
      setStreamStatus(`reconnecting in ${Math.round(delay / 1000)} s`);
      await sleep(delay);
      delay = Math.min(delay * 2, 30000);
    }
  }

  // ---------------------------------------------------------------- pages

  function queriesPage(main) {
    let alive = true;
    main.innerHTML = '<h1>Streaming queries</h1><div id="queries-table"><p class="muted">Loading…</p></div>';
    const p = poller(async () => {
      const data = await load('queries', 'queries');
      if (alive && data) $('#queries-table').innerHTML = queriesTable(data.queries || []);
    }, POLL_MS);
    return { stop() { alive = false; p.stop(); }, onEvent: () => p.now() };
  }

  function executorsPage(main) {
    let alive = true;
    main.innerHTML = '<h1>Executors</h1><div id="executors-table"><p class="muted">Loading…</p></div>';
    const p = poller(async () => {
      const data = await load('executors', 'executors');
      if (alive && data) $('#executors-table').innerHTML = executorsTable(data.executors || []);
    }, POLL_MS);
    return { stop() { alive = false; p.stop(); }, onEvent() {} };
  }

  function queryPage(main, id) {
    let alive = true;
    let info = null;
    let progress = [];
    let stopping = false;
    const base = `queries/${encodeURIComponent(id)}`;

    main.innerHTML = `
      <p class="crumbs"><a href="#/">Queries</a> / <span class="mono">${esc(id)}</span></p>
      <section id="query-header" class="query-header"><p class="muted">Loading…</p></section>
      <div class="actions">
        <button type="button" id="stop-query" class="danger" disabled>Stop query</button>
        <span id="stop-result" class="muted" role="status"></span>
      </div>
      <pre id="query-exception" class="exception" hidden></pre>
      <h2>Progress <span id="progress-count" class="muted small"></span></h2>
      <div id="charts" class="charts"></div>
      <h2>Last progress</h2>
      <div id="last-progress"></div>
      <details id="raw-progress"><summary>Raw lastProgress JSON</summary><pre id="raw-progress-json"></pre></details>`;

    function renderInfo() {
      $('#query-header').innerHTML = queryHeader(info);
      $('#stop-query').disabled = stopping || !info.isActive;
      const ex = $('#query-exception');
      ex.hidden = !info.exception;
      ex.textContent = info.exception || '';
    }

    function renderProgress() {
      const last = progress.length ? progress[progress.length - 1] : (info && info.lastProgress) || null;
      $('#progress-count').textContent = `(${progress.length} recent batch${progress.length === 1 ? '' : 'es'})`;
      $('#charts').innerHTML = CHART_DEFS.map((d) => renderChart(d, progress)).join('');
      $('#last-progress').innerHTML = lastProgressTable(last);
      $('#raw-progress-json').textContent = last ? JSON.stringify(last, null, 2) : 'null';
    }

    function addProgress(more) {
      const mine = more.filter((p) => p && p.id === id);
      if (!mine.length) return;
      const before = progress;
      progress = mergeProgress(progress, mine);
      if (progress.length !== before.length || progress.some((p, i) => p !== before[i])) renderProgress();
    }

    async function loadInfo() {
      const q = await load('query', base);
      if (!alive) return;
      if (!q) {
        if (!info) $('#query-header').innerHTML = '<p class="muted">Could not load this query (see the error above).</p>';
        return;
      }
      info = q;
      renderInfo();
      const lp = q.lastProgress;
      const known = progress.length ? progress[progress.length - 1] : null;
      // Missed events (stream lagged or reconnected): reload the recent reports, else append the last.
      if (lp && known && lp.runId === known.runId && lp.batchId > known.batchId + 1) loadRecent();
      else if (lp) addProgress([lp]);
    }

    async function loadRecent() {
      const list = await load('progress', `${base}/recentProgress`);
      if (!alive || !Array.isArray(list)) return;
      progress = mergeProgress(progress, list);
      renderProgress();
    }

    $('#stop-query').addEventListener('click', async () => {
      stopping = true;
      $('#stop-query').disabled = true;
      $('#stop-result').textContent = 'Stopping…';
      const q = await load('stop', `${base}/stop`, { method: 'POST' });
      stopping = false;
      if (!alive) return;
      if (q) {
        info = q;
        $('#stop-result').textContent = `Stop: ${(q.status && q.status.message) || 'done'}`;
        renderInfo();
      } else {
        $('#stop-result').textContent = 'Stop failed (see the error above).';
        if (info) renderInfo(); else $('#stop-query').disabled = false;
      }
    });

    renderProgress();
    loadRecent();
    const infoPoll = poller(loadInfo, POLL_MS);

    return {
      stop() { alive = false; infoPoll.stop(); },
      onEvent(type, data) {
        if (type === 'open') { loadRecent(); infoPoll.now(); return; }
        if (!data || typeof data !== 'object') return;
        if (type === 'QueryProgressEvent') addProgress([data.progress]);
        else if (/^Query(Started|Idle|Terminated)Event$/.test(type) && data.id === id) infoPoll.now();
      },
    };
  }

  // ---------------------------------------------------------------- router and bootstrap

  function route() {
    if (page) page.stop();
    for (const k of [...errors.keys()]) if (k !== 'events' && k !== 'auth') errors.delete(k);
    renderErrors();
    const r = parseRoute(location.hash);
    for (const a of document.querySelectorAll('[data-nav]')) {
      a.classList.toggle('active', a.dataset.nav === (r.page === 'query' ? 'queries' : r.page));
    }
    const main = $('#app');
    page = r.page === 'query' ? queryPage(main, r.id) : r.page === 'executors' ? executorsPage(main) : queriesPage(main);
  }

  function boot() {
    $('#auth-form').addEventListener('submit', onTokenSubmit);
    $('#error').addEventListener('click', (ev) => {
      const btn = ev.target.closest('[data-dismiss]');
      if (btn) clearError(btn.dataset.dismiss);
    });
    $('#app').addEventListener('click', (ev) => {
      const tr = ev.target.closest('tr[data-query]');
      if (tr && !ev.target.closest('a')) location.hash = '#/query/' + encodeURIComponent(tr.dataset.query);
    });
    window.addEventListener('error', (ev) => setError('ui', `UI error: ${ev.message}`));
    window.addEventListener('unhandledrejection', (ev) => setError('ui', `UI error: ${ev.reason && ev.reason.message || ev.reason}`));
    window.addEventListener('hashchange', route);
    route();
    runEventStream();
  }

  boot();
})();
