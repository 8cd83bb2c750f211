// Portcullis web UI: the VPN page (the WireGuard client tunnel to a VPN provider: its state,
// the import of the provider's .conf file, which devices use it, the kill switch and the
// provider's forwarded port). Uses the helpers app.js shares; text is always set with
// textContent. The private key is sent once, in the import, and never comes back.
'use strict';
(function () {
  var P = window.Portcullis;
  if (!P) return;
  var h = P.h, api = P.api, field = P.field, val = P.val;

  var STATES = {
    off: 'Off: the tunnel is configured but switched off; every device uses the plain internet connection.',
    'no key': 'No private key is stored: import the provider\'s file again.',
    error: 'Not working: the tunnel could not be set up (the reason is below).',
    connecting: 'Connecting: no handshake with the provider\'s server yet.',
    connected: 'Connected.',
    stale: 'No answer: the last handshake with the provider\'s server is more than 3 minutes old.'
  };
  // Notes of the last import, shown once on the page drawn after it.
  var lastNotes = null;

  function copy(o) { return JSON.parse(JSON.stringify(o)); }
  function bytes(n) {
    var u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'], i = 0;
    while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
    return (i ? n.toFixed(1) : String(n)) + ' ' + u[i];
  }
  function row(label, value, id) {
    return h('tr', { id: id }, h('th', { scope: 'row', text: label }), h('td', null, value));
  }
  function noWireGuard(err) { return /not supported|EOPNOTSUPP|unknown device type|no wireguard/i.test(err || ''); }

  // ---- state (redrawn every 5 s) ---------------------------------------------
  function statePanel(d) {
    var s = d.state, cfg = d.vpn;
    if (!cfg) {
      return h('div', { id: 'vpn-state' }, h('p', { 'class': 'muted', id: 'vpn-none',
        text: 'No tunnel is configured: every device uses the plain internet connection. Import your VPN provider\'s WireGuard file below.' }));
    }
    if (!s) return h('div', { id: 'vpn-state' }, h('p', { 'class': 'muted', text: 'The router has not reported the tunnel yet.' }));
    var out = [];
    var good = s.state === 'connected', cls = good ? 'good' : (s.state === 'off' || s.state === 'connecting' ? 'warn' : 'bad');
    out.push(h('p', { 'class': 'banner ' + cls, id: 'vpn-summary' },
      h('strong', { id: 'vpn-state-word', text: s.state }), h('span', { text: STATES[s.state] || '' })));
    if (s.error) {
      out.push(h('p', { 'class': 'banner bad', id: 'vpn-error', role: 'alert' }, h('span', { text: 'Error: ' }), h('span', { id: 'vpn-error-text', text: s.error })));
      if (noWireGuard(s.error)) {
        out.push(h('p', { 'class': 'banner bad', id: 'vpn-no-wireguard',
          text: 'This router\'s kernel has no WireGuard support, so the tunnel cannot exist here.' }));
      }
    }
    if (s.enabled && !good && s.kill_switch) {
      out.push(h('p', { 'class': 'hint', id: 'vpn-kill-note',
        text: 'The kill switch is on: the devices that use the tunnel have no internet until it is connected (nothing leaks in clear).' }));
    }
    var hs = s.last_handshake_unix ? P.dur(Math.max(0, d.now_unix - s.last_handshake_unix)) + ' ago' : 'never';
    var pf = s.port_forward, pfText = 'off';
    if (pf) {
      pfText = pf.port ? 'port ' + pf.port + ' → ' + pf.to + ' (' + pf.health + (pf.expires_in_secs !== null ? ', renews within ' + P.dur(pf.expires_in_secs) : '') + ')'
        : 'no port held → ' + pf.to + ' (' + pf.health + ')';
    }
    out.push(h('table', { id: 'vpn-state-table' }, h('tbody', null,
      row('Interface', s.interface + ' (link ' + s.link + ')', 'vpn-link'),
      row('Server (endpoint)', s.endpoint, 'vpn-endpoint'),
      row('Last handshake', hs, 'vpn-handshake'),
      row('Received / sent', bytes(s.rx_bytes) + ' / ' + bytes(s.tx_bytes), 'vpn-bytes'),
      row('Tunnel addresses', s.addresses.join(', ') || '–', 'vpn-addresses'),
      row('Our public key', s.public_key || (s.has_private_key ? 'stored (shown once the tunnel exists)' : 'none'), 'vpn-public-key'),
      row('Devices using it', s.devices === 'all' ? 'all LAN devices' : s.devices, 'vpn-devices-now'),
      row('Forwarded port', pfText, 'vpn-port'),
      row('Kill switch', (s.kill_switch ? 'on' : 'OFF') + ', ' + s.kill_switch_drops + ' packets stopped', 'vpn-kill'),
      row('Port Fail guard', s.port_fail_drops + ' packets to the server outside the tunnel stopped', 'vpn-portfail'))));
    return h('div', { id: 'vpn-state' }, out);
  }

  // ---- import --------------------------------------------------------------
  function importForm() {
    var f = h('form', { 'class': 'card', id: 'vpn-import-form', novalidate: true },
      h('h2', { text: 'Import the provider\'s file' }),
      h('p', { 'class': 'hint', text: 'The WireGuard .conf file your VPN provider gives you. Its private key is stored on the router only ' +
        '(readable by the router alone) and never shown, sent back or put in a backup. Importing again replaces the server and keys; ' +
        'your choices below stay.' }),
      field('The file', 'file', { form: 'import', type: 'file', hint: 'Choosing a file reads it into the box below.' }),
      field('Or paste it', 'conf', { form: 'import', area: true, placeholder: '[Interface]\nPrivateKey = …\nAddress = …\n\n[Peer]\nPublicKey = …\nEndpoint = …\nAllowedIPs = 0.0.0.0/0' }),
      h('span', { 'class': 'err', 'data-for': '_' }),
      h('div', { 'class': 'row' }, h('button', { type: 'submit', id: 'vpn-import-submit', text: 'Import' })));
    var area = f.elements.conf;
    area.setAttribute('spellcheck', 'false');
    area.classList.add('conf');
    f.elements.file.setAttribute('accept', '.conf,text/plain');
    f.elements.file.addEventListener('change', function () {
      var file = f.elements.file.files[0];
      if (!file) return;
      var rd = new FileReader();
      rd.onload = function () { area.value = String(rd.result); };
      rd.onerror = function () { P.showIssues(f, [{ field: 'file', message: 'The file could not be read.' }]); };
      rd.readAsText(file);
    });
    f.addEventListener('submit', function (e) {
      e.preventDefault();
      P.clearErrors(f);
      if (!area.value.trim()) { P.showIssues(f, [{ field: 'conf', message: 'Choose the file or paste it first.' }]); return; }
      api('POST', '/vpn/import', { conf: area.value }).then(function (r) {
        if (r.ok) {
          area.value = '';
          lastNotes = r.body.notes || [];
          var w = P.warnings(r.body.warnings);
          P.flash('Imported: the tunnel is being set up.' + (w ? ' Note: ' + w : ''), w ? 'warn' : 'good');
          P.route();
        } else if (r.body.key !== undefined) {
          // The parser's refusal: where (line, key) and why.
          var where = (r.body.line ? 'Line ' + r.body.line : 'The file') + (r.body.key ? ', ' + r.body.key : '');
          P.showIssues(f, [{ field: 'conf', message: where + ': ' + ((r.body.issues || [])[0] || {}).message }]);
        } else {
          P.showIssues(f, r.body.issues || [{ field: '', message: r.body.error }]);
        }
      });
    });
    return f;
  }

  // ---- the owner's settings ------------------------------------------------
  var FIELDS = { 'vpn.enabled': 'enabled', 'vpn.devices': 'devices', 'vpn.kill_switch': 'kill_switch',
    'vpn.port_forward.to': 'pf_to', 'vpn.port_forward.to_port': 'pf_to', 'vpn.port_forward.gateway': 'pf_gateway', 'vpn.port_forward': 'pf_to' };
  function fieldOf(f) {
    for (var k in FIELDS) if (f === k || f.indexOf(k + '.') === 0 || f.indexOf(k + '[') === 0) return FIELDS[k];
    return f;
  }

  function settingsForm(cfg, tag) {
    var dev = cfg.devices || { all: true, hosts: [], macs: [] }, pf = cfg.port_forward;
    var f = h('form', { 'class': 'card', id: 'vpn-settings-form', novalidate: true },
      h('h2', { text: 'Settings' }),
      field('Tunnel on', 'enabled', { form: 'vpn', type: 'checkbox', value: cfg.enabled }),
      h('fieldset', { 'class': 'plain' }, h('legend', { 'class': 'sr', text: 'Which devices use the tunnel' }),
        h('label', { text: 'Which devices use the tunnel' }),
        h('div', { 'class': 'choice' }, h('input', { type: 'radio', name: 'scope', id: 'vpn-devices-all', value: 'all', checked: dev.all }),
          h('label', { 'for': 'vpn-devices-all', text: 'All LAN devices' })),
        h('div', { 'class': 'choice' }, h('input', { type: 'radio', name: 'scope', id: 'vpn-devices-some', value: 'some', checked: !dev.all }),
          h('label', { 'for': 'vpn-devices-some', text: 'Only these (the others keep the plain connection)' }))),
      field('Devices', 'devices', { form: 'vpn', area: true, value: (dev.hosts || []).concat(dev.macs || []).join('\n'),
        placeholder: '192.168.1.10\n192.168.1.64/28\naa:bb:cc:dd:ee:ff', hint: 'Addresses, subnets or MAC addresses, one per line.' }),
      field('Kill switch', 'kill_switch', { form: 'vpn', type: 'checkbox', value: cfg.kill_switch,
        hint: 'Recommended: the devices that use the tunnel never reach the internet outside it (while it connects, fails, or the router restarts).' }),
      h('p', { 'class': 'banner warn', id: 'vpn-kill-warn', hidden: cfg.kill_switch,
        text: 'Without the kill switch, whenever the tunnel is down these devices use the plain connection and your real address shows.' }),
      field('Forward the provider\'s port', 'pf_on', { form: 'vpn', type: 'checkbox', value: !!pf,
        hint: 'Asks the provider (NAT-PMP, e.g. ProtonVPN) for a port and sends what arrives on it to one LAN device. The port can change; this page shows the current one.' }),
      field('Send it to (address[:port])', 'pf_to', { form: 'vpn', value: pf ? pf.to + (pf.to_port ? ':' + pf.to_port : '') : '',
        placeholder: '192.168.1.10:8080', hint: 'Without a port, the provider\'s port number is kept.' }),
      field('Provider\'s gateway', 'pf_gateway', { form: 'vpn', value: pf ? pf.gateway : '10.2.0.1', hint: 'Inside the tunnel; 10.2.0.1 for ProtonVPN.' }),
      h('span', { 'class': 'err', 'data-for': '_' }),
      h('div', { 'class': 'row' }, h('button', { type: 'submit', id: 'vpn-settings-submit', text: 'Save' })));
    var kill = f.elements.kill_switch;
    kill.addEventListener('change', function () { f.querySelector('#vpn-kill-warn').hidden = kill.checked; });
    f.addEventListener('submit', function (e) {
      e.preventDefault();
      P.clearErrors(f);
      var next = copy(cfg), items = P.list(val(f, 'devices'));
      next.enabled = f.elements.enabled.checked;
      next.kill_switch = kill.checked;
      next.devices = { all: f.elements.scope.value === 'all', hosts: [], macs: [] };
      if (!next.devices.all) {
        items.forEach(function (x) { (/^([0-9a-f]{2}[:-]){5}[0-9a-f]{2}$/i.test(x) ? next.devices.macs : next.devices.hosts).push(x); });
        if (!items.length) { P.showIssues(f, [{ field: 'devices', message: 'Name at least one device, or choose all.' }]); return; }
      }
      if (f.elements.pf_on.checked) {
        var to = val(f, 'pf_to'), m = /^(.*):(\d+)$/.exec(to);
        next.port_forward = { to: m ? m[1] : to, gateway: val(f, 'pf_gateway') || '10.2.0.1' };
        if (m) next.port_forward.to_port = Number(m[2]);
        if (!to) { P.showIssues(f, [{ field: 'pf_to', message: 'Which LAN device receives the port?' }]); return; }
      } else delete next.port_forward;
      api('PUT', '/vpn', next, null, tag).then(function (r) {
        if (P.conflict(r, 'The VPN settings')) return;
        if (r.ok) {
          var w = P.warnings(r.body.warnings);
          P.flash('VPN settings saved.' + (w ? ' Note: ' + w : ''), w ? 'warn' : 'good');
          P.route();
        } else {
          P.showIssues(f, (r.body.issues || [{ field: '', message: r.body.error }]).map(function (i) {
            return { severity: i.severity, field: fieldOf(i.field || ''), message: (i.field ? i.field + ': ' : '') + i.message };
          }));
        }
      });
    });
    return f;
  }

  function removeCard(tag) {
    return h('form', { 'class': 'card', id: 'vpn-remove-card' },
      h('h2', { text: 'Remove the tunnel' }),
      h('p', { 'class': 'hint', text: 'Deletes the tunnel, its settings and its private key from the router; every device goes back to the plain connection.' }),
      h('div', { 'class': 'row' }, P.twoStep(h('button', { type: 'button', 'class': 'danger', id: 'vpn-remove', text: 'Remove' }), 'Remove', function () {
        api('DELETE', '/vpn', null, null, tag).then(function (r) {
          if (P.conflict(r, 'The VPN settings')) return;
          if (r.ok) P.flash('The tunnel and its key were removed.');
          else P.flash(r.body.error || 'The router refused.', 'bad');
          P.route();
        });
      })));
  }

  function vpnPage() {
    return api('GET', '/vpn').then(function (r) {
      if (!r.ok) {
        P.show('VPN', h('h1', { text: 'VPN' }), h('p', { 'class': 'banner bad', text: r.body.error || 'The router did not answer.' }));
        return;
      }
      var d = r.body, tag = r.etag || d.etag, notes = lastNotes;
      lastNotes = null;
      var stateEl = statePanel(d);
      P.show('VPN', h('h1', { text: 'VPN (WireGuard)' }),
        h('p', { 'class': 'muted', text: 'Send some or all LAN devices through your VPN provider, with a kill switch, and receive the port the provider forwards.' }),
        notes && notes.length ? h('div', { 'class': 'banner warn', id: 'vpn-notes' }, h('strong', { text: 'From the file:' }),
          h('ul', null, notes.map(function (n) { return h('li', { text: n }); }))) : null,
        stateEl, importForm(), d.vpn ? settingsForm(d.vpn, tag) : null, d.vpn ? removeCard(tag) : null);
      P.poll(function () {
        api('GET', '/vpn').then(function (n) {
          if (!n.ok || !stateEl.isConnected) return;
          // Only the state is redrawn: the forms being edited stay (a save after a change
          // made elsewhere answers 409 and reloads).
          var fresh = statePanel(n.body);
          stateEl.replaceWith(fresh);
          stateEl = fresh;
        });
      });
    });
  }

  P.register('vpn', vpnPage);
})();
