/* Lintas dashboard. Plain JavaScript, no dependencies, no build: it talks to the same
 * /api/v1 endpoints as any client. Every value from the server is inserted as text
 * (textContent / createTextNode), never as HTML. The token lives in sessionStorage and
 * travels only in the Authorization header; live updates use fetch-based Server-Sent
 * Events (EventSource cannot send headers) that resume with Last-Event-ID. */
'use strict';

(() => {
  const SVG_NS = 'http://www.w3.org/2000/svg'; // an XML namespace name, never fetched
  const TOKEN_KEY = 'lintas.token';
  const TERMINAL = new Set(['succeeded', 'failed', 'rolled_back', 'canceled', 'superseded']);
  const RUN_STATES = ['queued', 'running', 'waiting_approval', 'succeeded', 'failed', 'rolled_back', 'canceled', 'superseded'];

  // ------------------------------------------------------------------ DOM helpers
  function build(el, attrs, children) {
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === 'class') el.setAttribute('class', v);
      else if (k === 'dataset') Object.assign(el.dataset, v);
      else if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
      else el.setAttribute(k, v === true ? '' : String(v));
    }
    for (const c of children.flat(Infinity)) {
      if (c === null || c === undefined || c === false) continue;
      el.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return el;
  }
  const h = (tag, attrs, ...children) => build(document.createElement(tag), attrs, children);
  const svg = (tag, attrs, ...children) => build(document.createElementNS(SVG_NS, tag), attrs, children);
  const $ = (sel, root = document) => root.querySelector(sel);
  const enc = encodeURIComponent;
  const sleep = (ms, signal) => new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    if (signal) signal.addEventListener('abort', () => { clearTimeout(t); resolve(); }, { once: true });
  });

  function badge(state, extra) {
    const s = String(state ?? 'unknown');
    return h('span', { class: `badge ${s.replace(/[^a-z0-9_]/gi, '_').toLowerCase()}${extra ? ' ' + extra : ''}` },
      s.replace(/_/g, ' '));
  }

  function when(ts) {
    if (!ts) return '–';
    const d = new Date(ts);
    const s = (Date.now() - d.getTime()) / 1000;
    if (s < 5) return 'just now';
    if (s < 60) return `${Math.round(s)} s ago`;
    if (s < 3600) return `${Math.round(s / 60)} min ago`;
    if (s < 86400) return `${Math.round(s / 3600)} h ago`;
    return d.toLocaleString();
  }
  const timeOf = (ts) => (ts ? new Date(ts).toLocaleTimeString() : '–');

  function dur(s) {
    if (s === null || s === undefined) return '–';
    if (s < 1) return `${Math.round(s * 1000)} ms`;
    if (s < 60) return `${s.toFixed(1)} s`;
    return `${Math.floor(s / 60)} m ${Math.round(s % 60)} s`;
  }
  const shortRef = (ref) => String(ref || '').replace(/^refs\/heads\//, '');
  const personOf = (author) => String(author || '').replace(/\s*<[^>]*>\s*$/, '') || '–';

  function toast(text, kind) {
    const t = h('div', { class: `toast${kind ? ' ' + kind : ''}`, role: 'status' }, text);
    $('#toasts').append(t);
    setTimeout(() => t.remove(), kind === 'error' ? 8000 : 4000);
  }

  // ------------------------------------------------------------------ token and API
  const token = {
    get: () => sessionStorage.getItem(TOKEN_KEY) || '',
    set: (v) => sessionStorage.setItem(TOKEN_KEY, v),
    clear: () => sessionStorage.removeItem(TOKEN_KEY),
  };
  const authHeaders = () => (token.get() ? { Authorization: `Bearer ${token.get()}` } : {});

  class ApiError extends Error {
    constructor(status, detail) { super(detail); this.status = status; }
  }

  function askForToken(message) {
    const panel = $('#token-panel');
    panel.hidden = false;
    const msg = $('#token-message');
    msg.textContent = message || '';
    msg.hidden = !message;
    $('#token-input').focus();
  }

  async function api(path, opts = {}) {
    const headers = { Accept: 'application/json', ...authHeaders() };
    if (opts.body !== undefined) headers['Content-Type'] = 'application/json';
    const res = await fetch(path, { method: opts.method || 'GET', body: opts.body, headers, signal: opts.signal,
      cache: 'no-store', credentials: 'omit' });
    if (!res.ok) {
      let detail = `${res.status} ${res.statusText}`;
      try {
        const j = await res.json();
        if (j && j.detail !== undefined) detail = typeof j.detail === 'string' ? j.detail : JSON.stringify(j.detail);
      } catch (_) { /* not JSON */ }
      if (res.status === 401) {
        askForToken(token.get() ? `The server refused this token (${detail}).` : 'This server needs a token to show runs.');
      }
      throw new ApiError(res.status, detail);
    }
    const type = res.headers.get('content-type') || '';
    return type.includes('json') ? res.json() : res.text();
  }

  // ------------------------------------------------------------------ live indicator
  const liveState = new Map(); // stream name -> 'on' | 'poll'
  function setLive(name, state) {
    if (state === null) liveState.delete(name); else liveState.set(name, state);
    const el = $('#live');
    const states = [...liveState.values()];
    const s = states.length === 0 ? 'off' : states.every((v) => v === 'on') ? 'on' : 'poll';
    el.className = `live ${s}`;
    el.textContent = s === 'on' ? 'live' : s === 'poll' ? 'reconnecting' : 'idle';
  }

  /* Server-Sent Events over fetch, so the Bearer token goes in a header. Reconnects with
   * Last-Event-ID after a dropped connection; stops on `event: end` or abort. */
  async function sse(url, { signal, name, onEvent, onEnd, lastId = null }) {
    let retry = 1000;
    while (!signal.aborted) {
      try {
        const headers = { Accept: 'text/event-stream', ...authHeaders() };
        if (lastId !== null) headers['Last-Event-ID'] = String(lastId);
        const res = await fetch(url, { headers, signal, cache: 'no-store', credentials: 'omit' });
        if (res.status === 401 || res.status === 403) {
          setLive(name, 'poll');
          await sleep(5000, signal);
          continue;
        }
        if (!res.ok || !res.body) throw new Error(`${res.status}`);
        setLive(name, 'on');
        const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
        let buf = '';
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buf += value.replace(/\r\n?/g, '\n');
          let cut;
          while ((cut = buf.indexOf('\n\n')) >= 0) {
            const block = buf.slice(0, cut);
            buf = buf.slice(cut + 2);
            const ev = { event: 'message', data: [], id: null };
            for (const line of block.split('\n')) {
              if (!line || line.startsWith(':')) continue;
              const i = line.indexOf(':');
              const field = i < 0 ? line : line.slice(0, i);
              const val = i < 0 ? '' : line.slice(i + 1).replace(/^ /, '');
              if (field === 'event') ev.event = val;
              else if (field === 'data') ev.data.push(val);
              else if (field === 'id') ev.id = val;
              else if (field === 'retry' && /^\d+$/.test(val)) retry = Number(val);
            }
            if (ev.id !== null && /^\d+$/.test(ev.id)) lastId = Number(ev.id);
            if (ev.event === 'end') {
              setLive(name, null);
              if (onEnd) onEnd();
              return;
            }
            if (ev.data.length) onEvent({ event: ev.event, id: lastId, data: ev.data.join('\n') });
          }
        }
      } catch (err) {
        if (signal.aborted) break;
      }
      if (signal.aborted) break;
      setLive(name, 'poll');
      await sleep(retry, signal);
    }
    setLive(name, null);
  }

  function debounce(fn, ms) {
    let t = null;
    return () => { if (t === null) t = setTimeout(() => { t = null; fn(); }, ms); };
  }

  // ------------------------------------------------------------------ tables
  function cellValue(v) {
    if (v === null || v === undefined) return h('span', { class: 'muted' }, '–');
    if (typeof v === 'boolean') return badge(v ? 'true' : 'false');
    if (typeof v === 'number') return String(v);
    if (typeof v === 'object') {
      if (Array.isArray(v) && v.every((x) => typeof x !== 'object')) return v.join(', ');
      return h('code', {}, Object.entries(v).map(([k, x]) => `${k}=${typeof x === 'object' ? JSON.stringify(x) : x}`).join(' '));
    }
    const s = String(v);
    if (/^(ok|pass|passed|fail|failed|error|succeeded|skipped|changed|unchanged|running|pending|warn|warning|deny|require_approval|high|medium|low|critical|info|rolled_back|rollback)$/i.test(s)) {
      return badge(s.toLowerCase());
    }
    return s;
  }

  function dataTable(rows, preferred = []) {
    const cols = [];
    for (const c of preferred) if (rows.some((r) => c in r)) cols.push(c);
    for (const r of rows) for (const k of Object.keys(r)) if (!cols.includes(k)) cols.push(k);
    return h('div', { class: 'table-wrap subtable' },
      h('table', {},
        h('thead', {}, h('tr', {}, cols.map((c) => h('th', {}, c.replace(/_/g, ' '))))),
        h('tbody', {}, rows.map((r) => h('tr', {}, cols.map((c) => h('td', {}, cellValue(r[c]))))))));
  }

  // ------------------------------------------------------------------ runs list
  function runsView(root, signal) {
    const repo = h('input', { type: 'search', placeholder: 'repo', id: 'filter-repo', 'aria-label': 'repo' });
    const state = h('select', { id: 'filter-state', 'aria-label': 'state' },
      h('option', { value: '' }, 'any state'), RUN_STATES.map((s) => h('option', { value: s }, s.replace(/_/g, ' '))));
    const tbody = h('tbody', {});
    const note = h('div', { class: 'empty', hidden: true });
    root.replaceChildren(
      h('h1', {}, 'Runs'),
      h('div', { class: 'toolbar' }, repo, state, h('div', { class: 'spacer' }),
        h('span', { class: 'muted', id: 'runs-count' })),
      h('div', { class: 'card flush' }, h('div', { class: 'table-wrap' },
        h('table', { id: 'runs-table' },
          h('thead', {}, h('tr', {}, ['state', 'run', 'repo', 'ref', 'commit', 'author', 'message', 'created', 'duration']
            .map((c) => h('th', { class: c === 'duration' ? 'num' : null }, c)))),
          tbody)), note));

    function row(r) {
      return h('tr', { class: 'link run-row', dataset: { run: r.run_id, state: r.state },
        onclick: () => { location.hash = `#/runs/${enc(r.run_id)}`; } },
      h('td', {}, badge(r.state)),
      h('td', { class: 'nowrap' }, h('a', { href: `#/runs/${enc(r.run_id)}`, class: 'mono' }, r.run_id)),
      h('td', { class: 'nowrap' }, r.repo),
      h('td', { class: 'nowrap' }, shortRef(r.ref)),
      h('td', {}, h('code', {}, r.short_sha)),
      h('td', { class: 'nowrap', title: r.author }, personOf(r.author)),
      h('td', { class: 'msg', title: r.message }, r.message || ''),
      h('td', { class: 'nowrap', title: r.created_at }, when(r.created_at)),
      h('td', { class: 'num' }, dur(r.duration_s)));
    }

    async function load() {
      const q = new URLSearchParams({ limit: '100' });
      if (repo.value.trim()) q.set('repo', repo.value.trim());
      if (state.value) q.set('state', state.value);
      try {
        const runs = await api(`/api/v1/runs?${q}`, { signal });
        tbody.replaceChildren(...runs.map(row));
        note.hidden = runs.length > 0;
        note.textContent = 'No runs yet. Push to a registered repo, or POST /api/v1/runs, and it appears here live.';
        $('#runs-count').textContent = `${runs.length} shown`;
      } catch (err) {
        if (signal.aborted) return;
        tbody.replaceChildren();
        note.hidden = false;
        note.textContent = `Cannot list runs: ${err.message}`;
      }
    }
    const soon = debounce(load, 150);
    repo.addEventListener('input', debounce(load, 300));
    state.addEventListener('change', load);
    load();
    sse('/api/v1/events', { signal, name: 'runs', onEvent: soon });
    const poll = setInterval(load, 15000); // safety net, and keeps "x min ago" fresh
    signal.addEventListener('abort', () => clearInterval(poll));
  }

  // ------------------------------------------------------------------ run detail
  const NODE_W = 184; const NODE_H = 58; const COL_GAP = 58; const ROW_GAP = 16; const PAD = 14;

  function stageGraph(graph, stagesByName, onPick) {
    const nodes = graph.stages;
    if (!nodes.length) return h('div', { class: 'empty' }, 'The pipeline is not resolved yet.');
    const cols = new Map();
    for (const n of nodes) {
      if (!cols.has(n.depth)) cols.set(n.depth, []);
      cols.get(n.depth).push(n);
    }
    const depths = [...cols.keys()].sort((a, b) => a - b);
    const pos = {};
    depths.forEach((d, ci) => cols.get(d).forEach((n, ri) => {
      pos[n.name] = { x: PAD + ci * (NODE_W + COL_GAP), y: PAD + ri * (NODE_H + ROW_GAP) };
    }));
    const rows = Math.max(...[...cols.values()].map((c) => c.length));
    const width = PAD * 2 + depths.length * NODE_W + (depths.length - 1) * COL_GAP;
    const height = PAD * 2 + rows * NODE_H + (rows - 1) * ROW_GAP + 18;
    const root = svg('svg', { class: 'graph', id: 'stage-graph', width, height, viewBox: `0 0 ${width} ${height}`,
      role: 'img', 'aria-label': 'stage graph' });
    root.append(svg('defs', {}, svg('marker', { id: 'arrow', viewBox: '0 0 10 10', refX: 9, refY: 5, markerWidth: 7,
      markerHeight: 7, orient: 'auto-start-reverse' }, svg('path', { d: 'M0,0 L10,5 L0,10 z', class: 'arrow' }))));
    const edge = (from, to, cls) => {
      const a = pos[from]; const b = pos[to];
      if (!a || !b) return;
      const x1 = a.x + NODE_W; const y1 = a.y + NODE_H / 2; const x2 = b.x - 2; const y2 = b.y + NODE_H / 2;
      const mx = (x1 + x2) / 2;
      root.append(svg('path', { class: cls, d: `M${x1},${y1} C${mx},${y1} ${mx},${y2} ${x2},${y2}`,
        'marker-end': 'url(#arrow)', dataset: { from, to } }));
    };
    for (const n of nodes) {
      for (const need of n.needs) edge(need, n.name, 'edge');
      for (const f of n.on_failure) edge(f, n.name, 'edge fail');
    }
    for (const n of nodes) {
      const st = stagesByName[n.name];
      const state = n.awaiting_approval ? 'waiting' : n.state;
      const p = pos[n.name];
      const label = n.name.length > 22 ? `${n.name.slice(0, 21)}…` : n.name;
      const kind = n.kind !== n.name ? n.kind : '';
      const gate = n.approval === 'required' ? 'approval' : n.approval === 'on_request' ? 'approval on request' : '';
      const sub2 = n.awaiting_approval ? 'waiting for approval'
        : st && st.duration_s !== null && st.duration_s !== undefined ? `${n.state} · ${dur(st.duration_s)}` : n.state;
      root.append(svg('g', { class: `node st-${state}`, transform: `translate(${p.x},${p.y})`,
        dataset: { stage: n.name, state: n.state }, tabindex: 0, onclick: () => onPick(n.name) },
      svg('title', {}, `${n.name} (${n.kind}): ${n.state}${gate ? `, ${gate}` : ''}${st && st.error ? ` — ${st.error}` : ''}`),
      svg('rect', { width: NODE_W, height: NODE_H, rx: 8 }),
      svg('rect', { class: 'bar', width: 5, height: NODE_H - 16, x: 6, y: 8, rx: 2 }),
      svg('text', { class: 'name', x: 18, y: 22 }, label),
      svg('text', { class: 'sub', x: 18, y: 40 }, [kind, gate].filter(Boolean).join(' · ') || sub2),
      (kind || gate) ? svg('text', { class: 'sub', x: 18, y: 53 }, sub2) : null));
    }
    root.append(svg('text', { class: 'legend', x: PAD, y: height - 4 },
      'solid: needs · dashed red: runs on failure of'));
    return root;
  }

  function stageTable(run) {
    return h('div', { class: 'table-wrap' }, h('table', { id: 'stages-table' },
      h('thead', {}, h('tr', {}, ['stage', 'kind', 'state', 'worker', 'attempts', 'started', 'duration', 'error']
        .map((c) => h('th', { class: c === 'duration' || c === 'attempts' ? 'num' : null }, c)))),
      h('tbody', {}, run.stages.map((s) => h('tr', { id: `stage-${s.name}`, dataset: { stage: s.name } },
        h('td', {}, h('b', {}, s.name), s.on_failure ? h('span', { class: 'muted' }, ' (on failure)') : null),
        h('td', { class: 'muted' }, s.kind),
        h('td', {}, badge(s.state)),
        h('td', { class: 'mono' }, s.worker || '–'),
        h('td', { class: 'num' }, String(s.attempts)),
        h('td', { title: s.started_at || '' }, timeOf(s.started_at)),
        h('td', { class: 'num' }, dur(s.duration_s)),
        h('td', { class: s.error ? 'error-text' : 'muted' }, s.error || s.skip_reason || ''))))));
  }

  function diffBlock(text) {
    const pre = h('pre', { class: 'diff' });
    for (const line of String(text).replace(/\n$/, '').split('\n')) {
      const cls = line.startsWith('+++') || line.startsWith('---') ? 'meta'
        : line.startsWith('+') ? 'add' : line.startsWith('-') ? 'del' : line.startsWith('@@') ? 'hunk' : null;
      pre.append(h('span', { class: cls }, line));
    }
    return pre;
  }

  function planView(plan) {
    const targets = Object.values(plan.targets || {});
    const order = { changed: 0, new: 1, removed: 2, unchanged: 3 };
    const counts = {};
    for (const t of targets) counts[t.status] = (counts[t.status] || 0) + 1;
    const shown = targets.filter((t) => t.status !== 'unchanged')
      .sort((a, b) => order[a.status] - order[b.status] || (a.kind === 'host') - (b.kind === 'host')
        || a.target.localeCompare(b.target));
    const out = h('div', { id: 'plan' },
      h('div', { class: 'plan-summary' }, h('span', { class: 'muted' }, `against ${plan.against}:`),
        ['changed', 'new', 'removed', 'unchanged'].filter((s) => counts[s])
          .map((s) => h('span', { class: `badge ${s}`, dataset: { count: s } }, `${counts[s]} ${s}`))));
    if (!shown.length) out.append(h('div', { class: 'empty' }, 'No changes: every target is already in this state.'));
    shown.forEach((t, i) => {
      const added = t.diffs.reduce((a, d) => a + d.added, 0);
      const removed = t.diffs.reduce((a, d) => a + d.removed, 0);
      out.append(h('details', { class: 'target', dataset: { target: t.target, kind: t.kind || '' }, open: i === 0 },
        h('summary', {}, badge(t.status), h('span', { class: 'name' }, t.target),
          t.kind ? h('span', { class: 'muted' }, t.kind) : null,
          h('span', { class: 'stat' }, h('span', { class: 'add' }, `+${added}`), ' ', h('span', { class: 'del' }, `−${removed}`))),
        t.diffs.length ? t.diffs.map((d) => h('div', { class: 'artifact' },
          h('h4', {}, d.name, d.truncated ? ' (truncated)' : ''), diffBlock(d.diff)))
          : h('div', { class: 'artifact muted' }, 'removed from the model')));
    });
    return out;
  }

  const TITLES = { violations: 'Policy findings', top: 'Security findings', devices: 'Devices', checks: 'Verification checks',
    results: 'Results', hosts: 'Hosts' };
  const PREFERRED = ['decision', 'severity', 'device', 'target', 'host', 'name', 'check', 'status', 'ok', 'policy', 'rule',
    'tool', 'file', 'line', 'message'];

  function findingsView(run) {
    const parts = [];
    for (const s of run.stages) {
      const summary = s.summary || {};
      for (const [key, value] of Object.entries(summary)) {
        let rows = null;
        if (Array.isArray(value) && value.length && value.every((x) => x && typeof x === 'object' && !Array.isArray(x))) {
          rows = value;
        } else if (value && typeof value === 'object' && !Array.isArray(value) && (key === 'devices' || key === 'checks' || key === 'hosts')) {
          rows = Object.entries(value).map(([name, v]) => (v && typeof v === 'object'
            ? { [key === 'checks' ? 'check' : key === 'hosts' ? 'host' : 'device']: name, ...v } : { name, value: v }));
        }
        if (rows && rows.length) {
          parts.push(h('section', { class: 'finding-table', dataset: { stage: s.name, key } },
            h('h3', {}, `${TITLES[key] || key.replace(/_/g, ' ')} · ${s.name}`), dataTable(rows, PREFERRED)));
        }
      }
      if (s.diagnostics && s.diagnostics.length) {
        parts.push(h('section', { dataset: { stage: s.name, key: 'diagnostics' } },
          h('h3', {}, `Diagnostics · ${s.name}`), dataTable(s.diagnostics, ['file', 'line', 'column', 'path', 'message'])));
      }
    }
    if (run.diagnostics && run.diagnostics.length) {
      parts.unshift(h('section', {}, h('h3', {}, 'Run diagnostics'),
        dataTable(run.diagnostics, ['file', 'line', 'column', 'path', 'message'])));
    }
    return parts.length ? parts : [h('div', { class: 'empty' }, 'No findings, device results or checks recorded yet.')];
  }

  // the twin stage's report (twin/<run>.json): proven or not and why, the slice, phases, failing and out-of-scope checks
  function plainValue(v) {
    if (v === null || v === undefined) return '–';
    if (typeof v !== 'object') return String(v);
    if (Array.isArray(v)) return v.map(plainValue).join(', ');
    return Object.entries(v).map(([k, x]) => `${k}=${plainValue(x)}`).join(' ');
  }

  function twinView(stage, report) {
    const summary = stage.summary || {};
    const proven = report ? Boolean(report.passed) : Boolean(summary.passed) && !summary.skipped;
    const why = [];
    if (summary.skipped) why.push(summary.skipped);
    if (!proven && stage.error) why.push(stage.error);
    if (report && report.error) why.push(report.error);
    const required = summary.required
      ? h('div', { class: 'muted', id: 'twin-required' }, `required by: ${(summary.required_by || []).join('; ') || 'the pipeline'}`) : null;
    const out = h('div', { id: 'twin', dataset: { stage: stage.name, proven: proven ? 'yes' : 'no' } },
      h('div', { class: 'plan-summary', id: 'twin-verdict' },
        badge(proven ? 'passed' : 'failed', null), ' ',
        h('b', {}, proven ? 'proven on a twin' : 'NOT proven'),
        h('span', { class: 'muted' }, ` · stage ${stage.name}`),
        report ? h('span', { class: 'muted' }, ` · twin ${report.twin || '–'} (${report.prefix || '–'}), ${report.switches.length} switch(es)`) : null),
      required,
      why.length ? h('ul', { id: 'twin-why', class: 'error-text' }, why.map((w) => h('li', {}, w))) : null);
    if (summary.skipped && !report) return out;
    const cut = (report || summary).slice || {};
    const whole = (report || summary).whole;
    out.append(h('h3', {}, 'Slice'), whole
      ? h('div', { id: 'twin-slice', class: 'muted' }, 'the whole topology: the change touches every switch')
      : h('div', { class: 'table-wrap subtable' }, h('table', { id: 'twin-slice' },
        h('thead', {}, h('tr', {}, h('th', {}, 'switch'), h('th', {}, 'why'))),
        h('tbody', {}, Object.keys(cut).sort().map((n) => h('tr', { dataset: { switch: n } },
          h('td', { class: 'mono' }, n), h('td', {}, (cut[n] || []).join(', '))))))));
    const start = report ? report.start : summary.start;
    if (start) out.append(h('div', { class: 'muted', id: 'twin-start' }, `started from ${start}`,
      report && report.committed && report.committed.length ? ` · committed: ${report.committed.join(', ')}` : ''));
    const phases = report ? report.phases
      : Object.entries(summary.timings || {}).filter(([k]) => k !== 'total_s').map(([k, v]) => ({ name: k.replace(/_s$/, ''), seconds: v, ok: null, detail: '' }));
    if (phases.length) {
      const total = phases.reduce((a, p) => a + (p.seconds || 0), 0);
      out.append(h('h3', {}, 'Phases'), h('div', { class: 'table-wrap subtable' }, h('table', { id: 'twin-phases' },
        h('thead', {}, h('tr', {}, ['phase', 'time', 'ok', 'detail'].map((c) => h('th', { class: c === 'time' ? 'num' : null }, c)))),
        h('tbody', {}, phases.map((p) => h('tr', { dataset: { phase: p.name } },
          h('td', {}, p.name), h('td', { class: 'num' }, dur(p.seconds)),
          h('td', {}, p.ok === null ? '–' : badge(p.ok ? 'ok' : 'fail')), h('td', { class: 'muted' }, p.detail || ''))),
        h('tr', { dataset: { phase: 'total' } }, h('td', {}, h('b', {}, 'total')), h('td', { class: 'num' }, dur(total)), h('td', {}), h('td', {}))))));
    }
    const failing = (report ? report.checks : summary.checks || []).filter((c) => c && c.passed === false);
    if (failing.length) {
      out.append(h('h3', {}, `Failing checks (${failing.length})`), h('div', { class: 'table-wrap subtable' }, h('table', { id: 'twin-failing' },
        h('thead', {}, h('tr', {}, ['target', 'check', 'subject', 'expected', 'observed'].map((c) => h('th', {}, c)))),
        h('tbody', {}, failing.map((c) => h('tr', { dataset: { device: c.device || '', check: c.check || '' } },
          h('td', { class: 'mono' }, c.device || '–'), h('td', {}, c.check || '–'), h('td', { class: 'mono' }, plainValue(c.subject)),
          h('td', { class: 'mono' }, plainValue(c.expected)), h('td', { class: 'mono' }, plainValue(c.observed))))))));
    }
    const scope = (report ? report.out_of_scope : summary.out_of_scope) || [];
    if (scope.length) {
      out.append(h('h3', {}, 'Out of scope (not proven by this twin)'),
        h('ul', { id: 'twin-out-of-scope' }, scope.map((line) => h('li', {}, line))));
    }
    return out;
  }

  function stageDetails(run) {
    const scalars = [];
    for (const s of run.stages) {
      const entries = Object.entries(s.summary || {}).filter(([, v]) => v === null || typeof v !== 'object'
        || (Array.isArray(v) && v.every((x) => typeof x !== 'object')));
      if (!entries.length) continue;
      scalars.push(h('section', {}, h('h3', {}, s.name),
        h('dl', { class: 'kv' }, entries.map(([k, v]) => [h('dt', {}, k.replace(/_/g, ' ')),
          h('dd', {}, Array.isArray(v) ? (v.join(', ') || '–') : v === null ? '–' : String(v))]))));
    }
    return scalars.length ? scalars : [h('div', { class: 'empty' }, 'No stage summaries yet.')];
  }

  function runView(root, signal, runId) {
    const head = h('div', { class: 'card', id: 'run-head' }, h('div', { class: 'muted' }, 'loading…'));
    const approval = h('div', { class: 'card approval', id: 'approval', hidden: true });
    const graphBox = h('div', { class: 'graph-wrap' });
    const stagesBox = h('div', {});
    const planBox = h('div', {}, h('div', { class: 'empty' }, 'No plan yet: it appears when the render stage has run.'));
    const findingsBox = h('div', { id: 'findings' });
    const twinCard = h('div', { class: 'card', id: 'twin-card', hidden: true });
    const detailsBox = h('div', { id: 'stage-details' });
    const logBox = h('div', { class: 'logs', id: 'logs', role: 'log' });
    const logState = h('span', { class: 'muted', id: 'log-state' }, 'connecting…');
    root.replaceChildren(
      h('a', { class: 'back', href: '#/runs' }, '← all runs'),
      head, approval,
      h('div', { class: 'card' }, h('h2', {}, 'Stage graph'), graphBox),
      h('div', { class: 'card flush' }, stagesBox),
      h('div', { class: 'card' }, h('h2', {}, 'Plan', h('span', { class: 'muted' }, '(per-device diffs)')), planBox),
      twinCard,
      h('div', { class: 'grid2' },
        h('div', { class: 'card' }, h('h2', {}, 'Findings, devices and checks'), findingsBox),
        h('div', { class: 'card' }, h('h2', {}, 'Stage summaries'), detailsBox)),
      h('div', { class: 'card' }, h('h2', {}, 'Logs ', logState), logBox));

    let planKey = null;
    let last = null;

    function drawHead(run) {
      head.replaceChildren(h('div', { class: 'run-head' },
        h('div', { class: 'title' }, badge(run.state), h('span', { class: 'mono', id: 'run-id' }, run.run_id)),
        h('div', { class: 'muted' }, run.duration_s !== null ? `took ${dur(run.duration_s)}` : `created ${when(run.created_at)}`),
        h('div', { class: 'meta' },
          h('span', {}, 'repo ', h('b', {}, run.repo)), h('span', {}, 'ref ', h('b', {}, shortRef(run.ref))),
          h('span', {}, 'commit ', h('b', { class: 'mono', title: run.sha }, run.short_sha)),
          h('span', {}, 'by ', h('b', {}, run.author || '?')), h('span', {}, 'via ', h('b', {}, run.source)),
          h('span', {}, 'pipeline ', h('b', {}, run.pipeline || '–'), run.pipeline_source ? ` (${run.pipeline_source})` : ''),
          run.approved_by ? h('span', {}, 'approved by ', h('b', {}, run.approved_by)) : null,
          run.retry_of ? h('span', {}, 'retry of ', h('a', { href: `#/runs/${enc(run.retry_of)}` }, run.retry_of)) : null,
          run.superseded_by ? h('span', {}, 'superseded by ',
            h('a', { href: `#/runs/${enc(run.superseded_by)}` }, run.superseded_by)) : null),
        run.message ? h('div', { class: 'message' }, run.message) : null,
        run.error ? h('div', { class: 'message error-text' }, run.error) : null,
        run.warnings.length ? h('div', { class: 'message' }, run.warnings.map((w) => h('div', {}, badge('warning'), ' ', w))) : null));
    }

    async function act(action, button) {
      const comment = $('#approval-comment', approval)?.value || '';
      if (!token.get()) {
        askForToken(`An operator token is needed to ${action} a run.`);
        return;
      }
      for (const b of approval.querySelectorAll('button')) b.disabled = true;
      try {
        const res = await api(`/api/v1/runs/${enc(runId)}/${action}`, { method: 'POST', body: JSON.stringify({ comment }) });
        toast(`${action} requested by ${res.actor}`);
        button.textContent = `${action} sent`;
      } catch (err) {
        toast(`Cannot ${action}: ${err.message}`, 'error');
        for (const b of approval.querySelectorAll('button')) b.disabled = false;
      }
      refreshSoon();
    }

    function drawApproval(run, graph) {
      const waiting = run.state === 'waiting_approval';
      approval.hidden = !waiting;
      if (!waiting) { approval.replaceChildren(); delete approval.dataset.drawn; return; }
      const gates = graph.stages.filter((n) => n.awaiting_approval).map((n) => n.name);
      const key = `${gates.join(',')}|${run.approvals.length}`;
      if (approval.dataset.drawn === key) return; // keep what the operator typed
      approval.dataset.drawn = key;
      approval.replaceChildren(
        h('h2', {}, 'Waiting for approval'),
        h('div', { class: 'muted' }, gates.length ? `Gate: ${gates.join(', ')}` : ''),
        run.approval_reasons.length ? h('ul', {}, run.approval_reasons.map((r) => h('li', {}, r))) : h('p', {}, 'The pipeline requires an approval before it continues.'),
        h('div', { class: 'actions' },
          h('input', { id: 'approval-comment', type: 'text', placeholder: 'comment (optional, recorded in the audit trail)', maxlength: 2000 }),
          h('button', { class: 'btn ok', id: 'approve-button', type: 'button', onclick: (e) => act('approve', e.currentTarget) }, 'Approve'),
          h('button', { class: 'btn danger', id: 'reject-button', type: 'button', onclick: (e) => act('reject', e.currentTarget) }, 'Reject')),
        ...(token.get() ? [] : [h('p', { class: 'hint' }, 'Approving needs an operator token (Token, top right).')]));
    }

    async function maybePlan(run) {
      // the render stage's plan, found by the stage's kind (a pipeline may give it another name)
      const st = run.stages.find((s) => s.kind === 'render' && s.state === 'succeeded');
      if (!st) return;
      const key = `${st.name}/${st.attempts}`;
      if (key === planKey) return;
      try {
        const plan = await api(`/api/v1/runs/${enc(runId)}/artifacts/plan`, { signal });
        planKey = key;
        planBox.replaceChildren(planView(plan));
      } catch (err) {
        if (!signal.aborted) planBox.replaceChildren(h('div', { class: 'empty' }, `Plan unavailable: ${err.message}`));
      }
    }

    let twinKey = null;
    async function maybeTwin(run) {
      // the twin stage's report, found by the stage's kind, once the stage has ended
      const st = run.stages.find((s) => s.kind === 'twin' && TERMINAL.has(s.state));
      if (!st) return;
      const key = `${st.name}/${st.attempts}/${st.state}`;
      if (key === twinKey) return;
      let report = null;
      try {
        report = await api(`/api/v1/runs/${enc(runId)}/artifacts/twin`, { signal });
      } catch (err) {
        if (signal.aborted) return;
        if (err.status !== 404) {
          twinCard.hidden = false;
          twinCard.replaceChildren(h('h2', {}, 'Twin'), h('div', { class: 'empty' }, `Twin report unavailable: ${err.message}`));
          return;
        }
      }
      twinKey = key;
      twinCard.hidden = false;
      twinCard.replaceChildren(h('h2', {}, 'Twin', h('span', { class: 'muted' }, '(the change on a throwaway twin, before production)')),
        twinView(st, report));
    }

    function pick(name) {
      const row = document.getElementById(`stage-${name}`);
      if (row) row.scrollIntoView({ behavior: 'smooth', block: 'center' });
    }

    async function refresh() {
      try {
        const [run, graph] = await Promise.all([
          api(`/api/v1/runs/${enc(runId)}`, { signal }), api(`/api/v1/runs/${enc(runId)}/graph`, { signal })]);
        last = run;
        const byName = Object.fromEntries(run.stages.map((s) => [s.name, s]));
        drawHead(run);
        drawApproval(run, graph);
        graphBox.replaceChildren(stageGraph(graph, byName, pick));
        stagesBox.replaceChildren(stageTable(run));
        findingsBox.replaceChildren(...findingsView(run));
        detailsBox.replaceChildren(...stageDetails(run));
        await maybePlan(run);
        await maybeTwin(run);
      } catch (err) {
        if (signal.aborted) return;
        if (err.status === 404) head.replaceChildren(h('div', { class: 'error-text' }, `No run ${runId}.`));
        else head.replaceChildren(h('div', { class: 'error-text' }, `Cannot load the run: ${err.message}`));
      }
    }
    const refreshSoon = debounce(refresh, 100);

    function logLine(data) {
      let l;
      try { l = JSON.parse(data); } catch (_) { return; }
      const atBottom = logBox.scrollTop + logBox.clientHeight >= logBox.scrollHeight - 8;
      logBox.append(h('div', { class: l.level },
        h('span', { class: 'ts' }, (l.ts || '').slice(11, 23)), ' ',
        h('span', { class: 'stage' }, `[${l.stage || 'run'}]`), ' ',
        l.level !== 'info' ? `${l.level.toUpperCase()} ` : '', l.message));
      if (atBottom) logBox.scrollTop = logBox.scrollHeight;
    }

    refresh();
    sse(`/api/v1/runs/${enc(runId)}/events`, { signal, name: 'run', onEvent: refreshSoon, onEnd: refreshSoon });
    sse(`/api/v1/runs/${enc(runId)}/logs/stream`, {
      signal, name: 'logs',
      onEvent: (ev) => { logState.textContent = 'live'; logLine(ev.data); },
      onEnd: () => { logState.textContent = 'complete'; },
    });
    const poll = setInterval(() => { if (!last || !TERMINAL.has(last.state)) refresh(); }, 5000);
    signal.addEventListener('abort', () => clearInterval(poll));
  }

  // ------------------------------------------------------------------ targets
  function targetsView(root, signal) {
    const tbody = h('tbody', {});
    const note = h('div', { class: 'empty', hidden: true });
    root.replaceChildren(h('h1', {}, 'Targets'),
      h('p', { class: 'muted' }, 'Devices and hosts with the commit and run that last deployed them, and their drift state.'),
      h('div', { class: 'card flush' }, h('div', { class: 'table-wrap' }, h('table', { id: 'targets-table' },
        h('thead', {}, h('tr', {}, ['target', 'kind', 'repo', 'commit', 'deployed', 'by run', 'drift', 'artifacts']
          .map((c) => h('th', {}, c)))), tbody)), note));

    async function load() {
      try {
        const targets = await api('/api/v1/targets', { signal });
        tbody.replaceChildren(...targets.map((t) => h('tr', { dataset: { target: t.target } },
          h('td', { class: 'mono' }, h('b', {}, t.target)),
          h('td', {}, t.kind),
          h('td', {}, t.repo),
          h('td', {}, h('code', { title: t.commit }, t.commit.slice(0, 8))),
          h('td', { title: t.deployed_at }, when(t.deployed_at)),
          h('td', {}, h('a', { href: `#/runs/${enc(t.run_id)}`, class: 'mono' }, t.run_id)),
          h('td', {}, t.drift === null || t.drift === undefined
            ? h('span', { class: 'badge', title: 'drift detection has not reported on this target' }, 'unknown')
            : badge(t.drift),
            (t.differences || []).length
              ? h('details', {}, h('summary', {}, `${t.differences.length} difference(s)`),
                h('pre', { class: 'mono' }, t.differences.join('\n')))
              : null),
          h('td', { class: 'muted' }, Object.keys(t.artifacts || {}).join(', ')))));
        note.hidden = targets.length > 0;
        note.textContent = 'No target has been deployed yet.';
      } catch (err) {
        if (signal.aborted) return;
        note.hidden = false;
        note.textContent = `Cannot list targets: ${err.message}`;
      }
    }
    load();
    const poll = setInterval(load, 15000);
    signal.addEventListener('abort', () => clearInterval(poll));
  }

  // ------------------------------------------------------------------ router and token panel
  let current = null;
  function route() {
    if (current) current.abort();
    current = new AbortController();
    const parts = location.hash.replace(/^#\/?/, '').split('/').filter(Boolean).map(decodeURIComponent);
    const page = parts[0] === 'targets' ? 'targets' : 'runs';
    for (const a of document.querySelectorAll('[data-nav]')) a.classList.toggle('active', a.dataset.nav === page);
    const root = $('#view');
    if (parts[0] === 'runs' && parts[1]) {
      document.title = `${parts[1]} · Lintas`;
      runView(root, current.signal, parts[1]);
    } else if (page === 'targets') {
      document.title = 'Targets · Lintas';
      targetsView(root, current.signal);
    } else {
      document.title = 'Runs · Lintas';
      runsView(root, current.signal);
    }
  }

  function initToken() {
    const button = $('#token-button');
    const label = () => { button.textContent = token.get() ? 'Token ✓' : 'Token'; };
    label();
    button.addEventListener('click', () => {
      const panel = $('#token-panel');
      panel.hidden = !panel.hidden;
      if (!panel.hidden) $('#token-input').focus();
    });
    $('#token-form').addEventListener('submit', (e) => {
      e.preventDefault();
      const v = $('#token-input').value.trim();
      if (v) token.set(v);
      $('#token-input').value = '';
      $('#token-panel').hidden = true;
      label();
      route();
    });
    $('#token-forget').addEventListener('click', () => {
      token.clear();
      label();
      $('#token-panel').hidden = true;
      route();
    });
  }

  window.addEventListener('hashchange', route);
  document.addEventListener('DOMContentLoaded', () => { initToken(); route(); });
})();
