// Switchboard console: plain browser JavaScript, no build step, no third-party code. It reads
// the planner's API with a bearer token (from #token=… or the sign-in form, kept for this tab
// only), follows /ui/api/events for live updates, and calls the API's operator routes for
// pause / resume / rollback. The server decides what a token may do; the buttons only mirror it.
'use strict';
(() => {
  const $ = (id) => document.getElementById(id);
  const esc = (v) =>
    String(v ?? '').replace(
      /[&<>"']/g,
      (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c],
    );
  const state = { token: '', role: 'viewer', snap: null, versionsKey: '', following: false };

  const fromHash = /(?:^#|&)token=([^&]+)/.exec(location.hash);
  if (fromHash) {
    sessionStorage.setItem('sb-token', decodeURIComponent(fromHash[1]));
    history.replaceState(null, '', location.pathname);
  }
  state.token = sessionStorage.getItem('sb-token') || '';

  async function api(path, init = {}) {
    const headers = { ...(init.headers || {}), ...(state.token ? { authorization: `Bearer ${state.token}` } : {}) };
    if (init.body) headers['content-type'] = 'application/json';
    const r = await fetch(path, { ...init, headers });
    if (r.type === 'opaqueredirect') {
      // A follower sends writes to its leader (307); see operate().
      const e = new Error('redirected');
      e.redirect = true;
      throw e;
    }
    const text = await r.text();
    let body;
    try {
      body = JSON.parse(text);
    } catch {
      body = { error: text };
    }
    if (!r.ok) {
      const e = new Error(body.error || `HTTP ${r.status}`);
      e.status = r.status;
      throw e;
    }
    return body;
  }

  // ---- sign-in ----
  async function start() {
    // The live stream starts at once, beside the session check: the grid's first paint waits
    // for one round trip, not two.
    follow();
    try {
      const s = await api('/ui/api/session');
      state.role = s.role;
      $('who').textContent = s.open ? 'open API (no token file)' : `${s.identity} · ${s.role}`;
      $('login').hidden = true;
      $('app').hidden = false;
      if (state.snap) render(state.snap); // buttons follow the role
      loadOps();
    } catch (e) {
      if (e.status === 401) {
        $('login').hidden = false;
        $('app').hidden = true;
        $('login-error').textContent = state.token ? 'token refused' : '';
        return;
      }
      $('summary').textContent = `cannot reach the planner: ${e.message}`;
      setTimeout(start, 2000);
    }
  }
  $('login').addEventListener('submit', (ev) => {
    ev.preventDefault();
    state.token = $('token').value.trim();
    sessionStorage.setItem('sb-token', state.token);
    start();
  });

  // ---- live updates: server-sent events over an authenticated fetch ----
  async function follow() {
    if (state.following) return;
    state.following = true;
    let delay = 500;
    for (;;) {
      try {
        const r = await fetch('/ui/api/events', {
          headers: state.token ? { authorization: `Bearer ${state.token}` } : {},
        });
        if (r.status === 401) {
          state.following = false;
          return;
        } // start() shows the sign-in form
        if (!r.ok) {
          // 429/503: too many streams open (the planner caps them); its one-line reason says which.
          const why = await r.json().then(
            (b) => b.error,
            () => undefined,
          );
          throw new Error(why || `HTTP ${r.status}`);
        }
        $('live').classList.add('on');
        delay = 500;
        const reader = r.body.getReader();
        const dec = new TextDecoder();
        let buf = '';
        // A hung planner or a half-open connection sends nothing and closes nothing: the server
        // announces how often it speaks at least, and a silence of 2.5x that is a broken stream.
        let silentMs = 35_000;
        for (;;) {
          let timer;
          const silence = new Promise((_, reject) => {
            timer = setTimeout(
              () => reject(new Error(`no word from the planner for ${Math.round(silentMs / 1000)} s`)),
              silentMs,
            );
          });
          let chunk;
          try {
            chunk = await Promise.race([reader.read(), silence]);
          } catch (e) {
            reader.cancel().catch(() => {});
            throw e;
          } finally {
            clearTimeout(timer);
          }
          const { value, done } = chunk;
          if (done) throw new Error('the planner closed the stream');
          buf += dec.decode(value, { stream: true });
          let i;
          while ((i = buf.indexOf('\n\n')) >= 0) {
            const msg = buf.slice(0, i);
            buf = buf.slice(i + 2);
            const announced = /^: keep-alive-ms (\d+)$/.exec(msg);
            if (announced) silentMs = Math.max(1000, Number(announced[1]) * 2.5);
            const data = msg
              .split('\n')
              .filter((l) => l.startsWith('data: '))
              .map((l) => l.slice(6))
              .join('\n');
            if (data) {
              if (!state.snap) performance.mark('sb-first-snapshot'); // bench/console reads these marks
              render(JSON.parse(data));
            }
          }
        }
      } catch (e) {
        // What the page still shows is the last snapshot: say how old it is, and grey it out.
        const asOf = state.snapAt ? ` · showing the fleet as of ${state.snapAt.toLocaleTimeString()}` : '';
        $('summary').textContent = `live updates interrupted (${e.message}); reconnecting${asOf}`;
        $('app').classList.add('stale');
      }
      $('live').classList.remove('on');
      await new Promise((r) => setTimeout(r, delay));
      delay = Math.min(delay * 2, 10000);
    }
  }

  // ---- rendering ----
  function render(s) {
    state.snap = s;
    state.snapAt = new Date();
    state.snapMono = performance.now(); // the rollout clocks count on from here (renderRolloutClock)
    $('app').classList.remove('stale');
    const sum =
      Object.entries(s.summary)
        .filter(([, n]) => n > 0)
        .map(([w, n]) => `${n} ${w}`)
        .join(' · ') || 'no nodes';
    $('summary').textContent =
      `version ${s.latestVersion}${s.pinned ? ` (pinned to ${s.pinned.version})` : ''} · config revision ${s.config.defaultRevision} · ${s.nodes.length} nodes: ${sum}` +
      (s.rejectedTotal > 0 ? ` · rejected objects ${s.rejectedTotal}` : '');
    renderGroup(s.group);
    renderPlannerAlert(s);
    renderNodes();
    renderRollout(s);
    renderVersions(s);
    const nodeSel = $('at-node');
    if (nodeSel.options.length !== s.nodes.length) {
      const cur = nodeSel.value;
      nodeSel.innerHTML = s.nodes.map((n) => `<option>${esc(n.node)}</option>`).join('');
      if (cur) nodeSel.value = cur;
    }
  }

  // What `ctl status` puts in its header about the planner itself: the grid alone can be all
  // SYNCED while the planner no longer sees the cluster (nodes run the last version it made).
  function renderPlannerAlert(s) {
    const lines = [];
    const g = s.group;
    if (g && !g.leader && !g.self.leader) {
      const last = g.lastLeader
        ? ` (last: planner ${g.lastLeader.id}, term ${g.lastLeader.term}, renewed ${g.lastLeader.renewedAgoS} s ago)`
        : '';
      lines.push(
        `NO LEADER in group ${g.name}${last}: every write (pause, resume, roll back, config changes) is refused until a planner leads`,
      );
    }
    if (g?.cutOff) lines.push(`CUT OFF FROM THE GROUP: ${g.cutOff}`);
    if (s.sourceError)
      lines.push(`SOURCE FAILING: ${s.sourceError} (nodes keep the last version; later cluster changes are not seen)`);
    else if (s.synced === false) lines.push('NOT SYNCED: the planner has not finished reading the cluster');
    if (s.lastError) lines.push(`last error: ${s.lastError}`);
    const el = $('planner-alert');
    el.hidden = lines.length === 0;
    el.textContent = lines.join('\n');
  }

  // ---- the planner group: which planner serves this page, who leads, in which term ----
  const behind = (rows) =>
    rows === null || rows === undefined ? '' : rows === 0 ? ', caught up' : `, ${rows} rows behind`;
  // Only http(s) addresses become links: they come from the lease and member records on NATS.
  const link = (url, text) => (/^https?:\/\//.test(url) ? `<a href="${esc(url)}">${esc(text)}</a>` : esc(text));
  function renderGroup(g) {
    $('group-bar').hidden = !g;
    if (!g) return;
    const me = g.self;
    $('group-bar').className = me.leader || taking(g) ? 'leads' : g.leader ? 'follows' : 'leaderless';
    $('group').textContent =
      `group ${g.name} · this planner ${me.id} ` +
      (me.leader
        ? `leads (term ${me.term})`
        : taking(g)
          ? `won the lease (term ${g.leader.term}) and is taking over: catching up with the group's log`
          : g.leader
            ? `follows planner ${g.leader.id} (leader, term ${g.leader.term})${behind(me.lagRows)}`
            : `follows; no planner leads${behind(me.lagRows)}`);
    const others = g.members.filter((m) => m.id !== me.id);
    $('group-members').textContent = others.length
      ? `· other planners: ${others.map((m) => `${m.id} (${m.leader ? `leader, term ${m.term}` : `follower${behind(m.lagRows)}`})`).join(' · ')}`
      : '· no other planner';
  }

  // Why this planner cannot take a write (undefined: it can): a follower answers writes 307 naming
  // the leader, whose API is another address. The page says so beside the buttons instead of
  // sending a request that a browser can only fail (the redirect goes to another origin).
  // Elected, not leading yet: the lease is this planner's while it claims the group's log.
  const taking = (g) => !g.self.leader && g.leader?.id === g.self.id;
  function writesElsewhere(g) {
    if (!g || g.self.leader) return undefined;
    if (taking(g)) {
      const text = `this planner (${g.self.id}) is taking over as leader: writes (pause, resume, roll back) are refused until it leads`;
      return { text, html: esc(text) };
    }
    if (!g.leader) {
      const text = `no planner leads group ${g.name}: writes (pause, resume, roll back) are refused until one does`;
      return { text, html: esc(text) };
    }
    const head = `this planner (${g.self.id}) follows: writes (pause, resume, roll back) go to the leader, planner ${g.leader.id} (term ${g.leader.term})`;
    const api = g.leader.api;
    if (!api) return { text: head, html: esc(head) };
    return {
      text: `${head} at ${api}`,
      html: `${esc(head)} at ${link(`${api.replace(/\/+$/, '')}/ui/`, api)}: open its console there`,
    };
  }

  function renderNodes() {
    const s = state.snap;
    if (!s) return;
    const first = !$('nodes').tBodies[0].rows.length;
    const f = $('node-filter').value.trim().toLowerCase();
    const rows = f ? s.nodes.filter((n) => n.node.toLowerCase().includes(f) || n.status.toLowerCase() === f) : s.nodes;
    const cfg = (n) => `${n.appliedConfigRevision ?? '-'}/${n.targetConfigRevision}`;
    $('nodes').tBodies[0].innerHTML = rows
      .map(
        (n) =>
          `<tr data-node="${esc(n.node)}"><td>${esc(n.node)}</td><td><span class="w w-${esc(n.status)}" title="${esc(n.reason)}">${esc(n.status)}</span></td>` +
          `<td>${n.targetVersion}</td><td>${n.appliedVersion ?? '-'}</td><td>${cfg(n)}</td><td>${esc(n.mode ?? '-')}</td><td>${n.lag}</td><td>${verdict(n.health)}</td><td class="err">${esc(n.lastError ?? '')}</td></tr>`,
      )
      .join('');
    // What the nodes' heartbeats warn of (no failure: listener down, a forward drop policy), as
    // `ctl status` prints them under its table. Node-written text: escaped, never markup.
    const warned = rows.flatMap((n) => (n.warnings ?? []).map((w) => ({ node: n.node, w })));
    // appliers that do not know fields of their targets, in ctl status's words (probe15 U7)
    const unknown = s.unknownFields ?? [];
    $('node-warnings').innerHTML =
      warned.map(({ node, w }) => `<li data-node="${esc(node)}"><b>WARN</b> ${esc(node)}: ${esc(w)}</li>`).join('') +
      unknown.map((w) => `<li class="unknown-fields"><b>WARNING</b> ${esc(w)}</li>`).join('');
    $('node-warnings').hidden = warned.length + unknown.length === 0;
    // The next frame after the rows exist is the one that paints them (bench/console reads this).
    if (first && rows.length)
      requestAnimationFrame(() => requestAnimationFrame(() => performance.mark('sb-grid-painted')));
  }
  $('node-filter').addEventListener('input', renderNodes);

  // A node's health verdict (state read back + data-path probe); its reason on hover.
  function verdict(h) {
    if (!h) return '<span class="v v-none" title="this applier sends no verdict">-</span>';
    return `<span class="v v-${esc(h.verdict)}" title="${esc(h.reason)}">${esc(h.verdict)}${h.injected ? ' (test)' : ''}</span>`;
  }
  const clock = (ms) => {
    const s = Math.max(0, Math.round(ms / 1000));
    return s < 60 ? `${s}s` : `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  };
  // The wave and bake clocks tick here from what the planner measured (its monotonic clock) as of
  // the snapshot, counted on with this page's monotonic clock: never this browser's wall clock
  // against the start stamps, which may be hours off the planner's or step (NTP, a VM resumed).
  function renderRolloutClock() {
    const v = state.snap?.rollout;
    const c = state.snap?.clocks;
    const el = $('rollout-clock');
    if (!v || !el) return;
    const p = v.policy;
    const since = performance.now() - state.snapMono;
    const parts = [
      `wave ${v.wave}/${v.waves}: ${v.nodes}/${v.fleet} nodes`,
      `bake ${clock(p.bakeMs)}, wave timeout ${clock(p.waveTimeoutMs)}, max failures ${esc(p.maxFailures)}`,
    ];
    if (v.status === 'running' && c && c.waveElapsedMs !== null) {
      const wave = c.waveElapsedMs + since;
      parts.push(`wave started ${clock(wave)} ago, times out in ${clock(p.waveTimeoutMs - wave)}`);
      parts.push(
        c.bakeElapsedMs !== null
          ? `<span id="bake-clock">bake ${clock(c.bakeElapsedMs + since)} of ${clock(p.bakeMs)}</span>`
          : 'bake not started (waiting for every node of the wave to ACK)',
      );
    }
    if (v.waitingForPromote) parts.push(`waits for promote before wave ${v.waitingForPromote}`);
    el.innerHTML = parts.join(' · ');
  }
  setInterval(renderRolloutClock, 1000);

  function renderRollout(s) {
    const r = s.config.rollout;
    const elsewhere = writesElsewhere(s.group);
    const op = state.role === 'operator' && !elsewhere;
    // While an operation is in flight its buttons stay disabled: a double click sent two
    // rollbacks, the second moving the stable default fleet-wide (probe11 K2).
    const busy = state.operating === true;
    $('pause').disabled = busy || !op || r?.status !== 'running';
    $('resume').disabled = busy || !op || r?.status !== 'paused';
    $('rollback').disabled = busy || !op || !r || !['running', 'paused', 'halted'].includes(r.status);
    for (const b of ['pause', 'resume', 'rollback'])
      $(b).title = state.role !== 'operator' ? 'needs an operator token' : (elsewhere?.text ?? '');
    $('op-note').hidden = !elsewhere;
    if (elsewhere) $('op-note').innerHTML = elsewhere.html;
    if (!r) {
      $('rollout').innerHTML = `no rollout; default config revision ${s.config.defaultRevision}`;
      return;
    }
    const byNode = new Map(s.nodes.map((n) => [n.node, n]));
    const mark = (node) => {
      const n = byNode.get(node);
      if (r.haltedBy?.node === node) return 'nacked';
      if (n?.appliedConfigRevision === r.configRevision) return 'acked';
      if (n?.lastError && n.targetConfigRevision === r.configRevision) return 'nacked';
      return 'pending';
    };
    let prev = new Set();
    const waves = r.waves
      .map((w, i) => {
        const fresh = w.filter((n) => !prev.has(n));
        prev = new Set(w);
        const shown = fresh
          .slice(0, 60)
          .map((n) => `<span class="n ${mark(n)}" title="${mark(n)}">${esc(n)}</span>`)
          .join('');
        const more = fresh.length > 60 ? ` … +${fresh.length - 60}` : '';
        const acked = fresh.filter((n) => mark(n) === 'acked').length;
        return `<div class="wave" data-wave="${i + 1}"><b>wave ${i + 1}${i === r.wave ? ' ▸' : ''}</b> ${acked}/${fresh.length} ACKed ${shown}${more}</div>`;
      })
      .join('');
    // The words come with the snapshot (services/cli/operation-sentences.ts haltWords), as ctl says them.
    const h = s.halt;
    const halted = h
      ? `<div class="halted" id="halted-by"><b>${esc(h.by)}</b>: <span class="error">${esc(h.error)}</span>${esc(h.after)}</div>`
      : '';
    // A rolled-back revision in force again (a later rollback went back to it): ctl's words (defaultAgainWords).
    const again = s.defaultAgain ? `<div class="again" id="default-again">${esc(s.defaultAgain)}</div>` : '';
    const probe = (p) =>
      p
        ? `${p.succeeded}/${p.attempted} ok${p.unreachable ? `, ${p.unreachable} unreachable` : ''}${p.latencyMs ? `, p50 ${p.latencyMs.p50}ms` : ''}`
        : '-';
    const wn = s.rollout?.waveNodes ?? [];
    const table = wn.length
      ? `<table id="wave-nodes"><thead><tr><th>Wave node</th><th>Status</th><th>Runs</th><th>Health</th><th>Probe</th></tr></thead><tbody>${wn
          .slice(0, 200)
          .map(
            (n) =>
              `<tr data-node="${esc(n.node)}"><td>${esc(n.node)}</td><td><span class="w w-${esc(n.status)}">${esc(n.status)}</span></td><td>${n.appliedConfigRevision ?? '-'}</td>` +
              `<td>${verdict(n.verdict && { verdict: n.verdict, reason: n.reason, injected: n.injected })}</td><td>${esc(probe(n.probe))}</td></tr>` +
              (n.reason ? `<tr class="why"><td colspan="5">${esc(n.reason)}</td></tr>` : ''),
          )
          .join('')}</tbody></table>`
      : '';
    $('rollout').innerHTML =
      `<div>revision <b>${r.configRevision}</b> (from ${r.fromRevision}) · status <b id="rollout-status">${esc(r.status)}</b> · since <time>${esc(r.startedAt)}</time></div><div id="rollout-clock"></div>${halted}${again}${waves}${table}`;
    renderRolloutClock();
  }

  async function operate(op) {
    // The rollback names the rollout it means to stop and the default it saw: if another
    // operator (or an earlier click) stopped it already, the planner refuses (409) instead of
    // walking the stable default back (probe11 K2).
    const cfg = state.snap?.config;
    const [path, body] =
      op === 'pause'
        ? ['/rollout', { pause: true }]
        : op === 'resume'
          ? ['/rollout', { resume: true }]
          : ['/rollback', { rollout: cfg?.rollout?.configRevision, fromRevision: cfg?.defaultRevision }];
    $('op-result').textContent = `${op}…`;
    state.operating = true;
    for (const b of ['pause', 'resume', 'rollback']) $(b).disabled = true;
    try {
      // Not following a redirect: a follower's 307 names the leader's API, another origin that
      // neither answers this page nor gets its token (a bare "Failed to fetch" otherwise).
      await api(path, {
        method: 'POST',
        body: JSON.stringify({ ...body, reason: `${op} from the console` }),
        redirect: 'manual',
      });
      $('op-result').textContent = `${op}: done`;
      loadOps();
    } catch (e) {
      if (!e.redirect) {
        $('op-result').textContent = `${op} refused: ${e.message}`;
        return;
      }
      // The leader changed since the last snapshot: ask who leads now.
      const g = await api('/ui/api/snapshot').then(
        (fresh) => fresh.group,
        () => state.snap?.group,
      );
      $('op-result').innerHTML = `${esc(op)} not done here: ${
        writesElsewhere(g)?.html ?? 'this planner sent it to another one; see the group line'
      }`;
    } finally {
      state.operating = false;
      if (state.snap) renderRollout(state.snap);
    }
  }
  for (const b of ['pause', 'resume', 'rollback']) $(b).addEventListener('click', () => operate(b));

  function renderVersions(s) {
    const key = s.versions.map((v) => v.version).join(',');
    if (key === state.versionsKey) return;
    state.versionsKey = key;
    $('timeline').innerHTML = [...s.versions]
      .reverse()
      .map(
        (v) =>
          `<li value="${v.version}"><b>v${v.version}</b> <time>${esc(new Date(v.createdAt).toLocaleString())}</time> ${esc(v.reason)}${v.contentOf ? ` <i>(content of v${v.contentOf})</i>` : ''}</li>`,
      )
      .join('');
    const opts = [...s.versions]
      .reverse()
      .map((v) => `<option value="${v.version}">v${v.version}</option>`)
      .join('');
    for (const [id, pick] of [
      ['diff-a', 1],
      ['diff-b', 0],
    ]) {
      const sel = $(id);
      const cur = sel.value;
      sel.innerHTML = opts;
      sel.value = cur || String(s.versions[Math.max(0, s.versions.length - 1 - pick)]?.version ?? '');
    }
  }

  function change(c) {
    const what = c.change === 'changed' ? `${c.what}: ${fmt(c.before)} → ${fmt(c.after)}` : `${c.what} ${c.change}`;
    return `<div class="chg ${esc(c.change)}">${esc(what)}</div>`;
  }
  const fmt = (v) =>
    Array.isArray(v) ? `[${v.join(', ')}]` : typeof v === 'object' && v !== null ? JSON.stringify(v) : String(v);

  $('diff-go').addEventListener('click', async () => {
    const a = $('diff-a').value;
    const b = $('diff-b').value;
    try {
      const d = await api(`/diff?a=${encodeURIComponent(a)}&b=${encodeURIComponent(b)}`);
      const list = (title, xs, cls) =>
        xs?.length
          ? `<div><b>${title}</b>${xs.map((k) => `<div class="chg ${cls}">${esc(k)}</div>`).join('')}</div>`
          : '';
      const changed = (d.changedServices || [])
        .map((k) => `<div><b>~ ${esc(k)}</b>${(d.serviceChanges?.[k] || []).map(change).join('')}</div>`)
        .join('');
      const nodes = (d.changedNodes || [])
        .map((k) => `<div><b>~ node ${esc(k)}</b>${(d.nodeChanges?.[k] || []).map(change).join('')}</div>`)
        .join('');
      $('diff').innerHTML =
        `<h3>v${d.a} → v${d.b}</h3>` +
        (list('services added', d.addedServices, 'added') +
          list('services removed', d.removedServices, 'removed') +
          changed +
          list('nodes added', d.addedNodes, 'added') +
          list('nodes removed', d.removedNodes, 'removed') +
          nodes || 'no differences');
    } catch (e) {
      $('diff').innerHTML = `<span class="error">${esc(e.message)}</span>`;
    }
  });

  // ---- audit ----
  $('svc-go').addEventListener('click', async () => {
    try {
      const r = await api(`/ui/api/audit/service?ref=${encodeURIComponent($('svc-ref').value.trim())}`);
      $('svc-history').innerHTML =
        r.history.length === 0
          ? `no events for ${esc(r.service)}`
          : `<table><thead><tr><th>Received</th><th>Event</th><th>Version</th><th>ACKed by</th></tr></thead><tbody>` +
            r.history
              .map(
                (h) =>
                  `<tr><td>${esc(new Date(h.event.receivedAt).toLocaleString())}</td><td>${esc(h.event.kind)} ${esc(h.event.type)} ${esc(h.event.name)}</td><td>${h.version ?? '-'}</td><td>${esc(h.ackedBy.map((a) => `${a.node}@${a.version}`).join(', ') || '-')}</td></tr>` +
                  // versions a pin/rollback/unpin made that changed the service (probe11 K4)
                  (h.after ?? [])
                    .map(
                      (v) =>
                        `<tr class="operation"><td>${esc(new Date(v.at).toLocaleString())}</td><td>${esc(v.operation.kind)}${v.contentOf ? ` to ${v.contentOf}` : ''} by ${esc(v.operation.actor)}: ${esc(v.change)}</td><td>${v.version}</td><td>${esc(v.ackedBy.map((a) => `${a.node}@${a.version}`).join(', ') || '-')}</td></tr>`,
                    )
                    .join(''),
              )
              .join('') +
            '</tbody></table>' +
            ((n) =>
              n
                ? `<p>now: version ${n.version}${n.contentOf ? ` (version ${n.contentOf}'s content, held)` : ''}: ${esc(r.service)} ${esc(n.service)}</p>`
                : '')(r.history.at(-1)?.now);
    } catch (e) {
      $('svc-history').innerHTML = `<span class="error">${esc(e.message)}</span>`;
    }
  });

  $('at-go').addEventListener('click', async () => {
    const local = $('at-time').value;
    const at = local ? new Date(local).toISOString() : '';
    try {
      const r = await api(
        `/ui/api/audit/node?node=${encodeURIComponent($('at-node').value)}${at ? `&at=${encodeURIComponent(at)}` : ''}`,
      );
      const when = local ? new Date(local).toLocaleString() : 'now';
      $('node-at').innerHTML = !r.ack
        ? `<p>${esc(r.node)} had acknowledged nothing by ${esc(when)}</p>`
        : `<p><b>${esc(r.node)}</b> at ${esc(when)}: version <b>${r.ack.version}</b>, config revision ${r.ack.configRevision}, mode ${esc(r.ack.mode)} (ACKed ${esc(new Date(r.ack.at).toLocaleString())}; ` +
          `${r.nodeStateVerified === undefined ? 'config revision not in log' : r.nodeStateVerified ? 'verified by re-rendering' : 'DOES NOT MATCH re-rendering'})${r.nacksSince ? `, ${r.nacksSince} NACK(s) since` : ''}</p>` +
          `<p>services (${r.services.length}): ${esc(r.services.join(' '))}</p>`;
    } catch (e) {
      $('node-at').innerHTML = `<span class="error">${esc(e.message)}</span>`;
    }
  });

  async function loadOps() {
    try {
      const r = await api('/ui/api/audit/ops');
      $('ops').tBodies[0].innerHTML = r.operations
        .map(
          (o) =>
            `<tr><td>${o.id}</td><td>${esc(new Date(o.at).toLocaleString())}</td><td>${esc(o.kind)}</td><td>${esc(o.actor)}</td><td class="reason">${esc(o.reason)}</td><td>${esc(o.outcome ?? '')}</td></tr>`,
        )
        .join('');
    } catch (e) {
      $('ops').tBodies[0].innerHTML = `<tr><td colspan="6" class="error">${esc(e.message)}</td></tr>`;
    }
  }
  $('ops-go').addEventListener('click', loadOps);

  start();
})();
