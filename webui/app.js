// Portcullis web UI: plain DOM, no framework, talks only to /api/v1 (see docs/api.md).
// Text is always set with textContent, never parsed as HTML.
'use strict';
(function () {
  var csrf = '';
  var main = document.getElementById('main');
  var timer = null;

  function $(id) { return document.getElementById(id); }

  // h('tag', {attr: value, onclick: fn}, child, ...) builds an element.
  function h(tag, attrs) {
    var el = document.createElement(tag);
    for (var k in attrs || {}) {
      var v = attrs[k];
      if (v === null || v === undefined || v === false) continue;
      if (k.slice(0, 2) === 'on') el.addEventListener(k.slice(2), v);
      else if (k === 'text') el.textContent = v;
      else el.setAttribute(k, v === true ? '' : v);
    }
    for (var i = 2; i < arguments.length; i++) add(el, arguments[i]);
    return el;
  }
  function add(el, c) {
    if (c === null || c === undefined || c === false) return;
    if (Array.isArray(c)) { c.forEach(function (x) { add(el, x); }); return; }
    el.appendChild(typeof c === 'object' ? c : document.createTextNode(String(c)));
  }
  function show(title) {
    main.textContent = '';
    for (var i = 1; i < arguments.length; i++) add(main, arguments[i]);
    document.title = title + ' · Portcullis';
  }

  // `ifMatch`: the ETag of the object as last read (PUT and DELETE need it; a change made
  // elsewhere since then answers 409 instead of being overwritten).
  function api(method, path, body, raw, ifMatch) {
    var opts = { method: method, headers: {}, credentials: 'same-origin' };
    if (method !== 'GET') {
      opts.headers['Content-Type'] = 'application/json';
      opts.headers['X-CSRF-Token'] = csrf;
      opts.body = raw !== undefined && raw !== null ? raw : JSON.stringify(body || {});
    }
    if (ifMatch) opts.headers['If-Match'] = ifMatch;
    return fetch('/api/v1' + path, opts).then(function (r) {
      return r.json().catch(function () { return {}; }).then(function (j) {
        if (r.status === 401 && path !== '/login') { start(); throw new Error('logged out'); }
        return { status: r.status, ok: r.ok, body: j, etag: r.headers.get('ETag') };
      });
    });
  }
  // A 409: someone changed the object since this page read it. Show it fresh, then say so
  // (the message appears once the page shows what is there now).
  function conflict(r, what) {
    if (r.status !== 409) return false;
    route().then(function () {
      flash(what + ' was changed elsewhere — reloaded. Check it and make your change again.', 'warn');
      window.scrollTo(0, 0);
    });
    return true;
  }

  function flash(text, kind) {
    var f = $('flash');
    f.textContent = text;
    f.className = 'banner ' + (kind || 'good');
    f.hidden = !text;
  }

  // ---- forms ---------------------------------------------------------------
  function field(label, name, opts) {
    opts = opts || {};
    var id = (opts.form || 'f') + '-' + name;
    var input;
    if (opts.options) {
      input = h('select', { id: id, name: name },
        opts.options.map(function (o) { return h('option', { value: o[0], text: o[1] }); }));
    } else if (opts.area) {
      input = h('textarea', { id: id, name: name, placeholder: opts.placeholder });
    } else {
      input = h('input', {
        id: id, name: name, type: opts.type || 'text', placeholder: opts.placeholder,
        autocomplete: opts.autocomplete || 'off', inputmode: opts.inputmode, required: opts.required
      });
    }
    if (opts.value !== undefined) {
      if (input.type === 'checkbox') input.checked = !!opts.value; else input.value = opts.value;
    }
    var err = h('span', { 'class': 'err', id: id + '-err', 'data-for': name, 'aria-live': 'polite' });
    input.setAttribute('aria-describedby', id + '-err' + (opts.hint ? ' ' + id + '-hint' : ''));
    if (input.type === 'checkbox') {
      return h('div', null, h('label', { 'for': id }, input, ' ', label),
        opts.hint ? h('p', { 'class': 'hint', id: id + '-hint', text: opts.hint }) : null, err);
    }
    return h('div', null, h('label', { 'for': id, text: label }),
      opts.hint ? h('p', { 'class': 'hint', id: id + '-hint', text: opts.hint }) : null, input, err);
  }
  function clearErrors(form) {
    form.querySelectorAll('.err').forEach(function (e) { e.textContent = ''; });
    form.querySelectorAll('[aria-invalid]').forEach(function (e) { e.removeAttribute('aria-invalid'); });
  }
  // Shows API issues next to their fields; `prefix` is e.g. "forwards[2]".
  function showIssues(form, issues, prefix) {
    var first = null, general = [];
    (issues || []).forEach(function (i) {
      if (i.severity && i.severity !== 'error') return;
      var f = i.field || '';
      if (prefix && f.indexOf(prefix + '.') === 0) f = f.slice(prefix.length + 1);
      var name = f.split(/[.[]/)[0];
      var err = form.querySelector('.err[data-for="' + name + '"]');
      if (err) {
        err.textContent = (err.textContent ? err.textContent + ' ' : '') + i.message;
        var input = form.elements[name];
        if (input) { input.setAttribute('aria-invalid', 'true'); first = first || input; }
      } else general.push((i.field ? i.field + ': ' : '') + i.message);
    });
    var g = form.querySelector('.err[data-for="_"]');
    if (g) g.textContent = general.join(' ');
    if (first) first.focus();
  }
  function warnings(issues) {
    return (issues || []).filter(function (i) { return i.severity === 'warning'; })
      .map(function (i) { return i.message; }).join(' ');
  }
  function val(form, name) { var e = form.elements[name]; return e ? e.value.trim() : ''; }
  function port(v) { return /^\d+$/.test(v) ? Number(v) : v; }
  function list(v) { return v.split(/[\s,]+/).filter(Boolean); }

  // ---- formatting ----------------------------------------------------------
  function dur(s) {
    if (s === null || s === undefined) return '–';
    var d = Math.floor(s / 86400), hh = Math.floor(s % 86400 / 3600), m = Math.floor(s % 3600 / 60);
    if (d) return d + 'd ' + hh + 'h';
    if (hh) return hh + 'h ' + m + 'm';
    if (m) return m + 'm ' + (s % 60) + 's';
    return s + 's';
  }
  function when(t) {
    if (!t) return 'never';
    var d = new Date(t);
    return isNaN(d) ? t : d.toLocaleString();
  }
  function proto(p) { return p === 'both' ? 'tcp+udp' : p; }
  function td(label, c, cls) { return h('td', { 'data-label': label, 'class': cls }, c); }

  // ---- first boot and login ------------------------------------------------
  function setupPage(rules) {
    var form = h('form', { 'class': 'card', id: 'setup-form', onsubmit: function (e) {
      e.preventDefault();
      clearErrors(form);
      if (val(form, 'password') !== form.elements.confirm.value.trim()) {
        showIssues(form, [{ field: 'confirm', message: 'The two passwords differ.' }]);
        return;
      }
      api('POST', '/setup', { password: form.elements.password.value }).then(function (r) {
        if (r.ok) { csrf = r.body.csrf; flash('Password set. Welcome!'); location.hash = '#/exposure'; enter(); }
        else showIssues(form, r.body.issues || [{ field: '', message: r.body.error }]);
      });
    } },
    h('p', { text: 'Welcome. This router has no password yet: choose the admin password now. ' +
      'Until you do, this page is all it shows.' }),
    field('New admin password', 'password', { form: 'setup', type: 'password', autocomplete: 'new-password', hint: rules, required: true }),
    field('Repeat it', 'confirm', { form: 'setup', type: 'password', autocomplete: 'new-password', required: true }),
    h('span', { 'class': 'err', 'data-for': '_' }),
    h('div', { 'class': 'row' }, h('button', { type: 'submit', id: 'setup-submit', text: 'Set password' })));
    show('Set up', h('h1', { text: 'Set up Portcullis' }), form);
    form.elements.password.focus();
  }

  // The password file is damaged: no setup, no login, until the console command fixes it.
  function brokenPage(text) {
    show('Locked', h('h1', { text: 'The web UI is locked' }),
      h('p', { 'class': 'banner bad', id: 'broken', text: text }),
      h('p', null, 'On the router\'s console, run ', h('code', { text: 'portcullis set-password' }),
        ', type the new password and press Enter; then ', h('button', { type: 'button', id: 'broken-retry', text: 'try again', onclick: start })));
  }

  function loginPage() {
    var form = h('form', { 'class': 'card', id: 'login-form', onsubmit: function (e) {
      e.preventDefault();
      clearErrors(form);
      api('POST', '/login', { password: form.elements.password.value }).then(function (r) {
        if (r.ok) { csrf = r.body.csrf; flash(''); enter(); }
        else showIssues(form, [{ field: 'password', message: r.body.error || 'Login failed.' }]);
      });
    } },
    field('Admin password', 'password', { form: 'login', type: 'password', autocomplete: 'current-password', required: true }),
    h('div', { 'class': 'row' }, h('button', { type: 'submit', id: 'login-submit', text: 'Log in' })));
    show('Log in', h('h1', { text: 'Log in' }), form);
    form.elements.password.focus();
  }

  // ---- exposure ------------------------------------------------------------
  var lastExposure = '';
  // `refresh`: redraw only when something changed, so keyboard focus is not lost.
  function exposurePage(refresh) {
    return api('GET', '/exposure').then(function (r) {
      var e = r.body, seen = JSON.stringify(e);
      showHealth(e.health);
      if (!r.ok) {
        show('Exposure', h('h1', { text: 'Exposure' }), h('p', { 'class': 'banner bad', text: e.error || 'The router did not answer.' }));
        lastExposure = '';
        return;
      }
      delete e.taken_at;
      seen = JSON.stringify(e);
      if (refresh === true && seen === lastExposure) return;
      lastExposure = seen;
      var rows = (e.rows || []).map(function (x) {
        var mapped = x.kind === 'mapping' || x.kind === 'vpn';
        return h('tr', { 'data-name': mapped ? x.kind === 'vpn' ? 'vpn/' + x.external_port : x.protocol + '/' + x.external_port : x.name, 'data-kind': x.kind },
          td('Name', x.kind === 'vpn' ? [h('strong', { text: x.provenance }), ' through ' + x.name] :
            mapped ? [h('strong', { text: x.provenance }), ' by ' + x.host + (x.mac ? ' (' + x.mac + ')' : ''),
            x.name ? h('span', { 'class': 'muted', text: ' “' + x.name + '”' }) : null] :
            [x.name, x.kind === 'trigger' ? h('span', { 'class': 'muted', text: ' (trigger)' }) : null,
            x.in_config === false ? h('span', { 'class': 'risk', text: ' (in the firewall, not in the config)' }) : null]),
          td('Protocol', proto(x.protocol)),
          td('External port', x.external_port),
          td('Goes to', x.destination),
          td('Who may reach it', x.anyone ? h('span', { 'class': 'anyone', text: 'anyone' }) : x.allow_from.join(', ')),
          td('Hits', x.hits === null ? '–' : String(x.hits)),
          td('Last hit', mapped ? '–' : when(x.last_hit)),
          td('Time left', x.remaining_secs !== null ? dur(x.remaining_secs) : (x.state === 'not_installed' ? 'not installed!' : '–')),
          td('Warning', x.risk ? h('span', { 'class': 'risk', text: '⚠ ' + x.risk }) : ''));
      });
      show('Exposure', h('h1', { text: 'Exposure' }),
        h('p', { id: 'summary', 'class': 'summary' + (e.open_to_anyone ? ' warn' : ''), text: e.summary }),
        e.table_present === false ? h('p', { 'class': 'banner bad', text: 'The firewall table is not installed.' }) : null,
        rows.length ? h('table', { 'class': 'stack', id: 'exposure' },
          h('thead', null, h('tr', null, ['Name', 'Protocol', 'External port', 'Goes to', 'Who may reach it', 'Hits', 'Last hit', 'Time left', ''].map(function (t) { return h('th', { text: t }); }))),
          h('tbody', { id: 'exposure-rows' }, rows)) : null,
        e.armed_triggers ? h('p', { 'class': 'muted', text: e.armed_triggers + ' trigger(s) armed: they open ports only after outbound trigger traffic.' }) : null,
        (e.rows || []).some(function (x) { return x.kind === 'vpn'; }) ? h('p', { 'class': 'muted' }, 'The VPN provider row is the port your provider forwards: ' +
          'it is reachable at the provider\'s address, through the tunnel only; see ', h('a', { href: '#/vpn', text: 'VPN' }), '.') : null,
        e.mapped_ports ? h('p', { 'class': 'muted' }, 'Rows marked UPnP, NAT-PMP or PCP were opened by LAN devices themselves; see ',
          h('a', { href: '#/upnp', text: 'UPnP' }), ' to revoke them or change who may.',
          e.external && e.external.not_public ? ' Your router is behind another NAT, so they are not reachable from the internet anyway.' : '') : null,
        h('p', { 'class': 'muted', text: 'Everything else is closed to the internet. Updated every 5 s.' }));
    });
  }

  // ---- forwards and triggers -----------------------------------------------
  function twoStep(btn, label, act) {
    btn.addEventListener('click', function () {
      if (btn.dataset.armed) { act(); return; }
      btn.dataset.armed = '1';
      btn.textContent = 'Really ' + label.toLowerCase() + '?';
      setTimeout(function () { if (btn.isConnected) { delete btn.dataset.armed; btn.textContent = label; } }, 4000);
    });
    return btn;
  }

  // Devices and the dhcp section, read with the forward list for the form's device picker.
  var fwdCtx = {};
  function listPage(kind) {
    var plural = kind + 's', path = '/' + plural, pick = kind === 'forward' && window.Portcullis.devicePicker;
    return Promise.all([api('GET', path), pick ? api('GET', '/devices') : null, pick ? api('GET', '/dhcp') : null]).then(function (rs) {
      var r = rs[0];
      fwdCtx = pick && rs[1].ok && rs[2].ok ? { devices: rs[1].body.devices, dhcp: rs[2].body.dhcp, tag: rs[2].etag } : {};
      var items = r.body[plural] || [], status = {};
      (r.body.status || []).forEach(function (s) { status[s.name] = s; });
      var form = kind === 'forward' ? forwardForm(null, items.length) : triggerForm(null, items.length);
      var rows = items.map(function (it, i) {
        var st = (status[it.name] || {}).state || '';
        var toggled = Object.assign({}, it, { enabled: !it.enabled });
        delete toggled.etag;
        return h('tr', { 'data-name': it.name },
          td('Name', it.name),
          kind === 'forward' ? [
            td('Port', proto(it.protocol) + ' ' + it.external_port),
            td('Goes to', (it.device ? window.Portcullis.deviceName(fwdCtx, it.device) : it.internal_host) + ':' + (it.internal_port || it.external_port)),
            td('Who may reach it', it.allow_from && it.allow_from.length ? it.allow_from.join(', ') : h('span', { 'class': 'anyone', text: 'anyone' })),
            td('Expires', it.expires_at ? when(it.expires_at) : 'never')
          ] : [
            td('Trigger', proto(it.trigger_protocol) + ' ' + it.trigger_port),
            td('Opens', proto(it.open_protocol) + ' ' + it.open_port),
            td('Timeout', dur(it.timeout_secs))
          ],
          td('State', st.replace('_', ' ')),
          td('', h('span', { 'class': 'actions' },
            h('button', { type: 'button', 'class': 'secondary', 'data-edit': it.name, text: 'Edit', onclick: function () {
              var f = kind === 'forward' ? forwardForm(it, i) : triggerForm(it, i);
              form.replaceWith(f); form = f; f.elements.name.focus();
            } }),
            h('button', { type: 'button', 'class': 'secondary', 'data-toggle': it.name, text: it.enabled ? 'Disable' : 'Enable', onclick: function () {
              api('PUT', path + '/' + encodeURIComponent(it.name), toggled, null, it.etag).then(done(it.name + (it.enabled ? ' disabled.' : ' enabled.'), it.name));
            } }),
            twoStep(h('button', { type: 'button', 'class': 'danger', 'data-del': it.name, text: 'Delete' }), 'Delete', function () {
              api('DELETE', path + '/' + encodeURIComponent(it.name), null, null, it.etag).then(done(it.name + ' deleted.', it.name));
            }))));
      });
      show(kind === 'forward' ? 'Forwards' : 'Triggers',
        h('h1', { text: kind === 'forward' ? 'Port forwards' : 'Port triggers' }),
        kind === 'trigger' ? h('p', { 'class': 'muted', text: 'Outbound traffic from a LAN host to the trigger port opens the open port to that host until the timeout passes without trigger traffic.' }) : null,
        rows.length ? h('table', { 'class': 'stack', id: plural }, h('tbody', null, rows)) : h('p', { 'class': 'muted', text: 'None yet.' }),
        form);
    });
  }
  function done(msg, name) {
    return function (r) {
      if (name && conflict(r, name)) return;
      if (r.ok) { flash(msg + (warnings(r.body.warnings) ? ' Note: ' + warnings(r.body.warnings) : ''), warnings(r.body.warnings) ? 'warn' : 'good'); route(); }
      else flash(r.body.error === 'invalid' ? (r.body.issues || []).map(function (i) { return i.field + ': ' + i.message; }).join(' ') : r.body.error, 'bad');
    };
  }
  function submitItem(form, kind, orig, index, body) {
    clearErrors(form);
    var path = '/' + kind + 's' + (orig ? '/' + encodeURIComponent(orig.name) : '');
    delete body.etag;
    api(orig ? 'PUT' : 'POST', path, body, null, orig && orig.etag).then(function (r) {
      if (orig && conflict(r, orig.name)) return;
      if (r.ok) done(body.name + (orig ? ' saved.' : ' added.'))(r);
      else showIssues(form, r.body.issues || [{ field: '', message: r.body.error }], kind + 's[' + index + ']');
    });
  }
  function formShell(id, title, fields, orig) {
    return h('form', { 'class': 'card', id: id, novalidate: true },
      h('h2', { text: title }), fields,
      h('span', { 'class': 'err', 'data-for': '_' }),
      h('div', { 'class': 'row' },
        h('button', { type: 'submit', id: id + '-submit', text: orig ? 'Save' : 'Add' }),
        orig ? h('button', { type: 'button', 'class': 'secondary', text: 'Cancel', onclick: route }) : null));
  }
  function forwardForm(orig, index) {
    var o = orig || {}, P = window.Portcullis, pick = P.devicePicker ? P.devicePicker(o, fwdCtx) : null;
    var f = formShell('fwd-form', orig ? 'Edit forward ' + o.name : 'Add a forward', [
      field('Name', 'name', { form: 'fwd', value: o.name, hint: 'a-z, 0-9, - and _; up to 24 characters' }),
      field('Protocol', 'protocol', { form: 'fwd', options: [['tcp', 'TCP'], ['udp', 'UDP'], ['both', 'TCP and UDP']], value: o.protocol || 'tcp' }),
      field('External port', 'external_port', { form: 'fwd', value: o.external_port, inputmode: 'numeric', hint: 'The port on the internet side: 8080, or a range like 8000-8010' }),
      pick && pick.el,
      field('LAN host', 'internal_host', { form: 'fwd', value: o.internal_host, placeholder: '192.168.1.10' }),
      field('LAN port', 'internal_port', { form: 'fwd', value: o.internal_port, inputmode: 'numeric', hint: 'Empty: same as the external port' }),
      field('Who may connect (allow-list)', 'allow_from', { form: 'fwd', area: true, value: (o.allow_from || []).join('\n'),
        placeholder: '203.0.113.7\n198.51.100.0/24',
        hint: 'Addresses or networks, one per line. Strongly recommended: empty means anyone on the internet.' }),
      field('Temporary: close it automatically', 'temporary', { form: 'fwd', type: 'checkbox', value: !!o.expires_at }),
      field('Close after (hours)', 'hours', { form: 'fwd', value: o.expires_at ? '' : '24', inputmode: 'numeric', hint: o.expires_at ? 'Now closes ' + when(o.expires_at) + '; enter hours to change.' : 'Suggested: 24 hours.' }),
      field('Log new connections', 'log', { form: 'fwd', type: 'checkbox', value: o.log }),
      field('Comment', 'comment', { form: 'fwd', value: o.comment })
    ], orig);
    f.addEventListener('submit', function (e) {
      e.preventDefault();
      var body = Object.assign({}, o, {
        name: val(f, 'name'), protocol: val(f, 'protocol'), external_port: port(val(f, 'external_port')),
        internal_host: val(f, 'internal_host'), allow_from: list(val(f, 'allow_from')),
        log: f.elements.log.checked, comment: val(f, 'comment')
      });
      var ip = val(f, 'internal_port');
      if (ip) body.internal_port = port(ip); else delete body.internal_port;
      if (!f.elements.temporary.checked) delete body.expires_at;
      else if (val(f, 'hours')) {
        var hrs = Number(val(f, 'hours'));
        if (!(hrs > 0)) { clearErrors(f); showIssues(f, [{ field: 'hours', message: 'Enter a number of hours above 0.' }]); return; }
        body.expires_at = new Date(Date.now() + hrs * 3600000).toISOString().replace(/\.\d+Z$/, 'Z');
      }
      if (body.enabled === undefined) body.enabled = true;
      clearErrors(f);
      (pick ? pick.finish(f, body) : Promise.resolve(true)).then(function (ok) { if (ok) submitItem(f, 'forward', orig, index, body); });
    });
    if (pick) pick.ready();
    return f;
  }
  function triggerForm(orig, index) {
    var o = orig || {};
    var protos = [['tcp', 'TCP'], ['udp', 'UDP'], ['both', 'TCP and UDP']];
    var f = formShell('trg-form', orig ? 'Edit trigger ' + o.name : 'Add a trigger', [
      field('Name', 'name', { form: 'trg', value: o.name }),
      field('Trigger protocol', 'trigger_protocol', { form: 'trg', options: protos, value: o.trigger_protocol || 'tcp' }),
      field('Trigger port', 'trigger_port', { form: 'trg', value: o.trigger_port, hint: 'Outbound port (or range) that opens the ports below' }),
      field('Open protocol', 'open_protocol', { form: 'trg', options: protos, value: o.open_protocol || 'tcp' }),
      field('Open port', 'open_port', { form: 'trg', value: o.open_port }),
      field('Timeout (seconds)', 'timeout_secs', { form: 'trg', value: o.timeout_secs || 600, inputmode: 'numeric', hint: 'How long the ports stay open after the last trigger packet (suggested 600)' }),
      field('Comment', 'comment', { form: 'trg', value: o.comment })
    ], orig);
    f.addEventListener('submit', function (e) {
      e.preventDefault();
      var body = Object.assign({}, o, {
        name: val(f, 'name'), trigger_protocol: val(f, 'trigger_protocol'), trigger_port: port(val(f, 'trigger_port')),
        open_protocol: val(f, 'open_protocol'), open_port: port(val(f, 'open_port')),
        timeout_secs: port(val(f, 'timeout_secs')), comment: val(f, 'comment')
      });
      if (body.enabled === undefined) body.enabled = true;
      submitItem(f, 'trigger', orig, index, body);
    });
    return f;
  }

  // ---- log -----------------------------------------------------------------
  function logPage() {
    return api('GET', '/log').then(function (r) {
      var hits = (r.body.hits || []).map(function (x) {
        return h('tr', null, td('Time', when(x.time)), td('Name', x.name + ' (' + x.kind + ')'), td('New connections', String(x.new)));
      });
      var audit = (r.body.audit || []).map(function (x) {
        return h('tr', null, td('Time', when(x.time)), td('From', x.from), td('Action', x.action),
          td('What', x.target), td('Result', x.ok ? 'ok' : h('span', { 'class': 'risk', text: 'refused' })), td('Detail', x.detail));
      });
      function table(id, heads, rows) {
        return rows.length ? h('table', { 'class': 'stack', id: id },
          h('thead', null, h('tr', null, heads.map(function (t) { return h('th', { text: t }); }))), h('tbody', null, rows))
          : h('p', { 'class': 'muted', text: 'Nothing yet.' });
      }
      show('Log', h('h1', { text: 'Log' }),
        h('h2', { text: 'Hits on forwarded ports' }),
        h('p', { 'class': 'hint', text: 'New connections, from the firewall counters (read every 10 s).' }),
        table('hits', ['Time', 'Forward', 'New connections'], hits),
        h('h2', { text: 'Audit log: logins and changes' }),
        table('audit', ['Time', 'From', 'Action', 'What', 'Result', 'Detail'], audit));
    });
  }

  // ---- system --------------------------------------------------------------
  function systemPage() {
    return Promise.all([api('GET', '/system'), api('GET', '/settings')]).then(function (rs) {
      var sys = rs[0].body, st = rs[1].body, settingsTag = rs[1].etag;
      var pw = h('form', { 'class': 'card', id: 'pw-form' },
        h('h2', { text: 'Change the admin password' }),
        field('Current password', 'current', { form: 'pw', type: 'password', autocomplete: 'current-password' }),
        field('New password', 'new', { form: 'pw', type: 'password', autocomplete: 'new-password', hint: sys.password_rules }),
        h('span', { 'class': 'err', 'data-for': '_' }),
        h('div', { 'class': 'row' }, h('button', { type: 'submit', text: 'Change password' })));
      pw.addEventListener('submit', function (e) {
        e.preventDefault(); clearErrors(pw);
        api('POST', '/password', { current: pw.elements.current.value, 'new': pw.elements['new'].value }).then(function (r) {
          if (r.ok) { pw.reset(); flash('Password changed; other sessions were logged out.'); }
          else showIssues(pw, r.body.issues || [{ field: '', message: r.body.error }]);
        });
      });
      var restore = h('form', { 'class': 'card', id: 'restore-form' },
        h('h2', { text: 'Backup and restore' }),
        h('p', null, h('a', { href: '/api/v1/config', download: 'portcullis-config.json', id: 'backup', text: 'Download the config (backup)' })),
        h('p', { 'class': 'hint', id: 'backup-secrets', text: 'A backup never contains the VPN private key: after restoring it on another router, import the VPN provider\'s file again.' }),
        field('Restore from a file', 'file', { form: 'restore', type: 'file', hint: 'Checked completely before anything is replaced. LAN or management changes are applied on trial.' }),
        h('span', { 'class': 'err', 'data-for': '_' }),
        h('div', { 'class': 'row' }, h('button', { type: 'submit', text: 'Restore' })));
      restore.addEventListener('submit', function (e) {
        e.preventDefault(); clearErrors(restore);
        var file = restore.elements.file.files[0];
        if (!file) { showIssues(restore, [{ field: 'file', message: 'Choose a file first.' }]); return; }
        file.text().then(function (text) {
          api('POST', '/config', null, text).then(function (r) {
            if (r.ok) { flash('Config restored.'); refreshTrial(); }
            else showIssues(restore, r.body.issues || [{ field: '', message: r.body.error }]);
          });
        });
      });
      var net = h('form', { 'class': 'card', id: 'net-form' },
        h('h2', { text: 'Router settings' }),
        h('p', { 'class': 'hint', text: 'These can cut you off: they are applied on trial and undone after 60 s unless you confirm from the page.' }),
        field('LAN interface', 'lan_interface', { form: 'net', value: st.lan && st.lan.interface }),
        field('LAN subnets', 'lan_subnets', { form: 'net', value: st.lan && st.lan.subnets.join(' ') }),
        field('WAN interface', 'wan_interface', { form: 'net', value: st.wan && st.wan.interface }),
        field('Web UI port', 'http_port', { form: 'net', value: st.management && st.management.http_port, inputmode: 'numeric' }),
        h('span', { 'class': 'err', 'data-for': '_' }),
        h('div', { 'class': 'row' }, h('button', { type: 'submit', text: 'Apply on trial' })));
      net.addEventListener('submit', function (e) {
        e.preventDefault(); clearErrors(net);
        var body = { lan: { interface: val(net, 'lan_interface'), subnets: list(val(net, 'lan_subnets')) },
          wan: { interface: val(net, 'wan_interface') }, management: { http_port: Number(val(net, 'http_port')) } };
        api('PUT', '/settings', body, null, settingsTag).then(function (r) {
          if (conflict(r, 'The router settings')) return;
          var port = body.management.http_port, here = Number(location.port || 80);
          if (r.ok && port !== here) {
            // The UI moves to the new port; confirm from there (the session cookie follows).
            var to = location.protocol + '//' + location.hostname + (port === 80 ? '' : ':' + port) + '/#/system';
            flash('Applied on trial. The web UI moves to ' + to + ' — opening it to confirm…', 'warn');
            setTimeout(function () { location.href = to; }, 3000);
          } else if (r.ok) { flash('Applied on trial.', 'warn'); refreshTrial(); }
          else showIssues(net, (r.body.issues || [{ field: '', message: r.body.error }]).map(function (i) {
            var m = { 'lan.interface': 'lan_interface', 'wan.interface': 'wan_interface', 'management.http_port': 'http_port' };
            var f = i.field.indexOf('lan.subnets') === 0 ? 'lan_subnets' : (m[i.field] || i.field);
            return { severity: i.severity, field: f, message: i.message };
          }));
        });
      });
      show('System', h('h1', { text: 'System' }),
        h('p', null, 'Portcullis version ', h('strong', { id: 'version', text: sys.version })), pw, restore, net);
    });
  }

  // ---- trial banner --------------------------------------------------------
  var trialTick = null;
  function showHealth(hl) {
    var b = $('health');
    if (hl && hl.state === 'safe_mode') {
      b.textContent = 'SAFE MODE: nothing is forwarded and the internet reaches nothing, because ' +
        'the configuration could not be installed: ' + hl.reason;
      b.hidden = false;
    } else b.hidden = true;
  }
  function refreshTrial() {
    return api('GET', '/system').then(function (r) {
      var t = r.body.trial || {}, b = $('trial');
      showHealth(r.body.health);
      clearTimeout(trialTick);
      if (t.remaining_secs !== null && t.remaining_secs !== undefined) {
        $('trial-text').textContent = 'New settings on trial: they are undone in ' + t.remaining_secs + ' s unless you keep them.';
        b.hidden = false;
        trialTick = setTimeout(refreshTrial, 1000);
      } else b.hidden = true;
    }).catch(function () {});
  }
  $('trial-confirm').addEventListener('click', function () {
    api('POST', '/trial/confirm').then(function () { flash('Settings kept.'); refreshTrial(); });
  });
  $('logout').addEventListener('click', function () {
    api('POST', '/logout').then(function () { csrf = ''; flash('Logged out.'); start(); });
  });

  // Pages in other files (upnp.js) register here and share these helpers.
  window.Portcullis = {
    h: h, api: api, show: show, flash: flash, conflict: conflict, field: field, clearErrors: clearErrors,
    showIssues: showIssues, warnings: warnings, val: val, port: port, list: list, dur: dur, when: when,
    proto: proto, td: td, twoStep: twoStep, route: function () { return route(); },
    // Calls `fn` every 5 s while the page is shown (and visible).
    poll: function (fn) {
      clearInterval(timer);
      timer = setInterval(function () { if (!document.hidden) fn(); refreshTrial(); }, 5000);
    },
    register: function (name, fn) {
      pages[name] = fn;
      if (csrf && location.hash === '#/' + name) route();
    }
  };

  // ---- routing -------------------------------------------------------------
  var pages = { exposure: exposurePage, forwards: function () { return listPage('forward'); },
    triggers: function () { return listPage('trigger'); }, log: logPage, system: systemPage };
  function route() {
    var name = (location.hash.replace(/^#\//, '') || 'exposure');
    if (!pages[name]) name = 'exposure';
    document.querySelectorAll('#nav a').forEach(function (a) {
      var on = a.getAttribute('href') === '#/' + name;
      a.classList.toggle('active', on);
      if (on) a.setAttribute('aria-current', 'page'); else a.removeAttribute('aria-current');
    });
    clearInterval(timer);
    if (name === 'exposure') timer = setInterval(function () { if (!document.hidden) exposurePage(true); refreshTrial(); }, 5000);
    return pages[name]().then(refreshTrial).catch(function () {});
  }
  function enter() {
    $('nav').hidden = false;
    if (!location.hash) location.hash = '#/exposure';
    route();
  }
  function start() {
    clearTimeout(trialTick);
    $('nav').hidden = true;
    $('trial').hidden = true;
    $('health').hidden = true;
    clearInterval(timer);
    fetch('/api/v1/setup').then(function (r) { return r.json(); }).then(function (s) {
      if (s.broken) return brokenPage(s.broken);
      if (s.needed) return setupPage(s.rules);
      return fetch('/api/v1/session', { credentials: 'same-origin' }).then(function (r) {
        if (!r.ok) return loginPage();
        return r.json().then(function (j) { csrf = j.csrf; enter(); });
      });
    });
  }
  window.addEventListener('hashchange', function () { if (csrf) { flash(''); route(); } });
  start();
})();
