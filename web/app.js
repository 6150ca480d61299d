/* app.js -- the ringcast dashboard: a live board of quotes.* and charts of the server's counters.
 *
 * The board subscribes with one EventSource to `events?pattern=quotes.*`; each
 * `pmessage` event carries {"pattern","channel","data"} (or "data_b64" for a
 * payload that is not UTF-8). A JSON payload shaped like ringcast-feed's
 * quotes ({"sym","bid","ask","last","size","n","ts"}) fills a row of columns;
 * anything else is shown as raw text in its channel's row. Payloads are only
 * ever put in the page as text (textContent), never as HTML.
 *
 * The charts poll `metrics` (the Prometheus text format) every POLL_MS, keep
 * the last KEEP_S seconds, and derive rates from the counters between two
 * scrapes: deliveries and publishes per second, system calls per delivery
 * (all of them, and the sending ones only), and connected clients by
 * transport. uPlot draws them.
 *
 * A password (requirepass) given to the page as `?auth=...` is passed on:
 * as `auth=` to the event stream (EventSource cannot set headers) and as a
 * Bearer token to the metrics scrape.
 *
 * SPDX-License-Identifier: BSD-3-Clause
 */
'use strict';

(function () {
  const POLL_MS = 2000;
  const KEEP_S = 300;
  const CHART_H = 150;
  const auth = new URLSearchParams(location.search).get('auth');

  /* ---------------------------------------------------------------- board */

  const tbody = document.getElementById('quotes');
  const rows = new Map(); /* channel -> {tr, cells, last} */
  const COLS = ['sym', 'bid', 'ask', 'last', 'size', 'n', 'updated'];
  let received = 0;
  let receivedAtLastTick = 0;

  function rowFor(channel) {
    let r = rows.get(channel);
    if (r) return r;
    const tr = document.createElement('tr');
    tr.dataset.channel = channel;
    const cells = {};
    for (const c of COLS) {
      const td = document.createElement('td');
      td.className = c;
      tr.appendChild(td);
      cells[c] = td;
    }
    cells.sym.textContent = channel.startsWith('quotes.') ? channel.slice(7) : channel;
    /* Keep the rows sorted by channel name. */
    let before = null;
    for (const [ch, other] of rows) {
      if (ch > channel && (!before || ch < before.tr.dataset.channel)) before = other;
    }
    tbody.insertBefore(tr, before ? before.tr : null);
    r = { tr, cells, last: null, raw: null };
    rows.set(channel, r);
    document.getElementById('empty').hidden = true;
    return r;
  }

  function fmt(v) {
    return v === undefined || v === null ? '' : String(v);
  }

  /* A price with at least two decimals (JSON drops the trailing zero of 497.90). */
  function fmtPrice(v) {
    if (typeof v !== 'number' || !Number.isFinite(v)) return fmt(v);
    const s = String(v);
    const dot = s.indexOf('.');
    if (s.includes('e')) return s;
    return dot < 0 ? v.toFixed(2) : s.length - dot - 1 < 2 ? v.toFixed(2) : s;
  }

  /* Shows a raw payload across the value columns (non-JSON text, or JSON of another shape). */
  function showRaw(r, text) {
    if (!r.raw) {
      for (const c of COLS.slice(1, -1)) r.cells[c].hidden = true;
      r.raw = document.createElement('td');
      r.raw.className = 'raw';
      r.raw.colSpan = COLS.length - 2;
      r.tr.insertBefore(r.raw, r.cells.updated);
    }
    r.raw.textContent = text;
  }

  function showQuote(r, q) {
    if (r.raw) {
      r.raw.remove();
      r.raw = null;
      for (const c of COLS.slice(1, -1)) r.cells[c].hidden = false;
    }
    for (const c of ['bid', 'ask', 'last']) r.cells[c].textContent = fmtPrice(q[c]);
    for (const c of ['size', 'n']) r.cells[c].textContent = fmt(q[c]);
    const last = Number(q.last);
    r.cells.last.classList.toggle('up', r.last !== null && last > r.last);
    r.cells.last.classList.toggle('down', r.last !== null && last < r.last);
    r.last = last;
  }

  function isQuote(v) {
    return v !== null && typeof v === 'object' && !Array.isArray(v) &&
      ('last' in v || 'bid' in v || 'ask' in v);
  }

  function onDelivery(ev) {
    let m;
    try {
      m = JSON.parse(ev.data);
    } catch (e) {
      return; /* not an event of ours */
    }
    if (!m || typeof m.channel !== 'string') return;
    received++;
    const r = rowFor(m.channel);
    if (typeof m.data === 'string') {
      let q = null;
      try {
        q = JSON.parse(m.data);
      } catch (e) {
        q = null;
      }
      if (isQuote(q)) showQuote(r, q);
      else showRaw(r, m.data);
    } else if (typeof m.data_b64 === 'string') {
      showRaw(r, '(binary, base64) ' + m.data_b64);
    }
    r.cells.updated.textContent = new Date().toLocaleTimeString();
    r.tr.classList.add('fresh');
    setTimeout(() => r.tr.classList.remove('fresh'), 300);
  }

  const stream = document.getElementById('stream');
  function connect() {
    let url = 'events?pattern=' + encodeURIComponent('quotes.*');
    if (auth) url += '&auth=' + encodeURIComponent(auth);
    const es = new EventSource(url);
    es.addEventListener('open', () => {
      stream.textContent = 'live';
      stream.className = 'pill live';
    });
    es.addEventListener('error', () => {
      /* EventSource reconnects by itself (retry) unless the server refused it. */
      stream.textContent = es.readyState === EventSource.CLOSED ? 'closed' : 'reconnecting';
      stream.className = 'pill down';
    });
    es.addEventListener('pmessage', onDelivery);
    es.addEventListener('message', onDelivery);
  }

  setInterval(() => {
    const n = received - receivedAtLastTick;
    receivedAtLastTick = received;
    document.getElementById('msgrate').textContent = n + ' updates/s';
  }, 1000);

  /* ---------------------------------------------------------------- metrics */

  /* Parses the Prometheus text format into name -> [{labels, value}]. */
  function parseMetrics(text) {
    const out = new Map();
    const sample = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/;
    const label = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;
    for (const line of text.split('\n')) {
      if (line === '' || line[0] === '#') continue;
      const m = sample.exec(line);
      if (!m) continue;
      const labels = {};
      let l;
      label.lastIndex = 0;
      while (m[2] && (l = label.exec(m[2])) !== null) labels[l[1]] = l[2];
      if (!out.has(m[1])) out.set(m[1], []);
      out.get(m[1]).push({ labels, value: Number(m[3]) });
    }
    return out;
  }

  function value(mt, name, labels) {
    let sum = null;
    for (const s of mt.get(name) || []) {
      if (labels && Object.keys(labels).some((k) => s.labels[k] !== labels[k])) continue;
      sum = (sum || 0) + s.value;
    }
    return sum;
  }

  const TRANSPORTS = ['resp', 'sse', 'ws', 'http'];
  /* The calls that hand output to the kernel (INFO's send_syscalls): receives,
   * accepts and UDP reads left out, so a fed server with few subscribers
   * does not look like it spends its calls on sending. */
  const SEND_KINDS = ['io_uring_enter', 'write', 'writev', 'sendmsg'];
  /* uPlot's columnar data: [times, series...] per chart. */
  const data = {
    deliveries: [[], [], []],
    syscalls: [[], [], [], []],
    clients: [[]].concat(TRANSPORTS.map(() => [])),
  };
  const charts = {};

  function makeChart(key, title, series, yLabel) {
    const el = document.getElementById('chart-' + key);
    const opts = {
      title,
      width: Math.max(300, el.clientWidth),
      height: CHART_H,
      /* y from 0: a ratio near 0.05 should look small, not fill the chart. */
      scales: { x: { time: true }, y: { range: (u, min, max) => [0, max > 0 ? max * 1.15 : 1] } },
      series: [{}].concat(series.map((s) => Object.assign({ points: { show: false } }, s))),
      axes: [{}, { label: yLabel, size: 60 }],
      legend: { live: false },
    };
    charts[key] = new uPlot(opts, data[key], el);
  }

  function setupCharts() {
    makeChart('deliveries', 'Deliveries per second', [
      { label: 'deliveries/s', stroke: '#2563eb', width: 2 },
      { label: 'published/s', stroke: '#9333ea', width: 1 },
    ], 'per second');
    makeChart('syscalls', 'System calls per delivery', [
      { label: 'all, last interval', stroke: '#d97706', width: 2 },
      { label: 'sends only', stroke: '#0891b2', width: 2 },
      { label: 'all, since start', stroke: '#6b7385', width: 1, dash: [4, 4] },
    ], 'syscalls');
    const colors = { resp: '#dc2626', sse: '#059669', ws: '#7c3aed', http: '#64748b' };
    makeChart('clients', 'Connected clients', TRANSPORTS.map((t) => ({
      label: t, stroke: colors[t], width: 2,
    })), 'clients');
    window.addEventListener('resize', () => {
      for (const key in charts) {
        const el = document.getElementById('chart-' + key);
        charts[key].setSize({ width: Math.max(300, el.clientWidth), height: CHART_H });
      }
    });
  }

  let prev = null; /* {t, deliveries, published, syscalls} of the last scrape */

  function push(key, t, values) {
    const d = data[key];
    d[0].push(t);
    values.forEach((v, i) => d[i + 1].push(v));
    while (d[0].length && d[0][0] < t - KEEP_S) d.forEach((col) => col.shift());
    charts[key].setData(d);
  }

  function rate(now, before, dt) {
    return now === null || before === null || now < before || dt <= 0 ? null : (now - before) / dt;
  }

  function onMetrics(text) {
    const mt = parseMetrics(text);
    const t = Date.now() / 1000;
    const cur = {
      t,
      deliveries: value(mt, 'ringcast_deliveries_total'),
      published: value(mt, 'ringcast_messages_published_total'),
      syscalls: value(mt, 'ringcast_syscalls_total'),
      sends: SEND_KINDS.reduce(
        (n, k) => n + (value(mt, 'ringcast_syscalls_total', { kind: k }) || 0), 0),
    };
    if (prev) {
      const dt = t - prev.t;
      const dd = rate(cur.deliveries, prev.deliveries, 1);
      const ds = rate(cur.syscalls, prev.syscalls, 1);
      const dsend = rate(cur.sends, prev.sends, 1);
      push('deliveries', t, [rate(cur.deliveries, prev.deliveries, dt),
        rate(cur.published, prev.published, dt)]);
      push('syscalls', t, [dd > 0 && ds !== null ? ds / dd : null,
        dd > 0 && dsend !== null ? dsend / dd : null,
        value(mt, 'ringcast_syscalls_per_delivery')]);
    }
    push('clients', t, TRANSPORTS.map((tr) => value(mt, 'ringcast_connected_clients',
      { transport: tr })));
    prev = cur;

    const info = (mt.get('ringcast_info') || [])[0];
    const up = value(mt, 'ringcast_uptime_seconds');
    document.getElementById('server').textContent = info
      ? 'version ' + info.labels.version + ', ' + info.labels.io_backend + ' backend, up ' +
        Math.floor(up || 0) + ' s'
      : '';
  }

  async function poll() {
    const scrape = document.getElementById('scrape');
    try {
      const res = await fetch('metrics', {
        cache: 'no-store',
        headers: auth ? { Authorization: 'Bearer ' + auth } : {},
      });
      if (!res.ok) throw new Error('HTTP ' + res.status);
      onMetrics(await res.text());
      scrape.textContent = 'updated ' + new Date().toLocaleTimeString();
    } catch (e) {
      scrape.textContent = 'metrics unavailable: ' + e.message;
    }
    setTimeout(poll, POLL_MS);
  }

  connect();
  setupCharts();
  poll();
})();
