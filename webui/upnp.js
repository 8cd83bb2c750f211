// Portcullis web UI: the UPnP page (port mappings LAN devices make themselves with UPnP IGD,
// NAT-PMP or PCP). Uses the helpers app.js shares; text is always set with textContent.
'use strict';
(function () {
  var P = window.Portcullis;
  if (!P) return;
  var h = P.h, api = P.api, td = P.td, field = P.field, val = P.val;

  var MODES = [
    ['off', 'Off', 'Nothing listens for UPnP, NAT-PMP or PCP: devices find no gateway and open no ports. ' +
      'Games and calls may fall back to relays or fail to host. The safest choice.'],
    ['allow_list', 'Allow list', 'A request is granted only when a rule below names the device (by address or MAC) ' +
      'and the ports; anything else is refused.'],
    ['ask', 'Ask me', 'What a rule allows is granted; any other request waits on this page for your approval. ' +
      'The device keeps retrying, so an approval takes effect within a few seconds.']
  ];
  var VIA = { upnp: 'UPnP', natpmp: 'NAT-PMP', pcp: 'PCP' };

  function copy(o) { return JSON.parse(JSON.stringify(o)); }

  // Replaces the whole section; `tag` is its ETag as read (409 when it changed since).
  function save(section, tag, form, prefix, okText) {
    if (form) P.clearErrors(form);
    return api('PUT', '/upnp', section, null, tag).then(function (r) {
      if (P.conflict(r, 'The UPnP settings')) return;
      if (r.ok) {
        var w = P.warnings(r.body.warnings);
        P.flash(okText + (w ? ' Note: ' + w : ''), w ? 'warn' : 'good');
        P.route();
      } else if (form) {
        P.showIssues(form, r.body.issues || [{ field: '', message: r.body.error }], prefix);
      } else {
        P.flash(r.body.issues ? r.body.issues.map(function (i) { return i.field + ': ' + i.message; }).join(' ') : r.body.error, 'bad');
      }
    });
  }

  function modeForm(cfg, tag) {
    var f = h('form', { 'class': 'card', id: 'upnp-mode-form', novalidate: true },
      h('h2', { text: 'Mode' }),
      h('fieldset', { 'class': 'plain' }, h('legend', { 'class': 'sr', text: 'Mode' }),
        MODES.map(function (m) {
          var id = 'upnp-mode-' + m[0];
          return h('div', { 'class': 'choice' },
            h('input', { type: 'radio', name: 'mode', id: id, value: m[0], checked: cfg.mode === m[0], 'aria-describedby': id + '-hint' }),
            h('label', { 'for': id, text: m[1] }),
            h('p', { 'class': 'hint', id: id + '-hint', text: m[2] }));
        })),
      h('span', { 'class': 'err', 'data-for': 'mode' }),
      field('Longest lease (seconds)', 'max_lease_secs', { form: 'upnp', value: cfg.max_lease_secs, inputmode: 'numeric',
        hint: 'A mapping closes by itself after this unless the device renews it (86400 = one day).' }),
      field('Mappings per device', 'max_per_host', { form: 'upnp', value: cfg.max_per_host, inputmode: 'numeric' }),
      h('span', { 'class': 'err', 'data-for': '_' }),
      h('div', { 'class': 'row' }, h('button', { type: 'submit', id: 'upnp-mode-submit', text: 'Save' })));
    f.addEventListener('submit', function (e) {
      e.preventDefault();
      var next = copy(cfg), checked = f.querySelector('input[name=mode]:checked');
      next.mode = checked ? checked.value : cfg.mode;
      next.max_lease_secs = P.port(val(f, 'max_lease_secs'));
      next.max_per_host = P.port(val(f, 'max_per_host'));
      save(next, tag, f, 'upnp', 'UPnP settings saved.');
    });
    return f;
  }

  function ruleForm(cfg, tag, index) {
    var o = index === null ? {} : cfg.allow[index];
    var f = h('form', { 'class': 'card', id: 'upnp-rule-form', novalidate: true },
      h('h2', { text: index === null ? 'Add a rule' : 'Edit rule ' + (index + 1) }),
      h('p', { 'class': 'hint', text: 'A request is allowed when the device is in Devices (address) or MACs, and the ports match. ' +
        'A device may only ever map ports to itself.' }),
      field('Devices (addresses or networks)', 'hosts', { form: 'rule', area: true, value: (o.hosts || []).join('\n'),
        placeholder: '192.168.1.10\n192.168.1.0/24', hint: 'One per line.' }),
      field('MAC addresses', 'macs', { form: 'rule', area: true, value: (o.macs || []).join('\n'),
        placeholder: 'aa:bb:cc:dd:ee:ff', hint: 'One per line; follows the device when its address changes.' }),
      field('External ports', 'external_ports', { form: 'rule', value: o.external_ports, inputmode: 'numeric',
        hint: 'The ports on the internet side: 50000, or a range like 50000-50100. Required.' }),
      field('Device ports', 'internal_ports', { form: 'rule', value: o.internal_ports, inputmode: 'numeric', hint: 'Empty: any.' }),
      field('Protocol', 'protocol', { form: 'rule', options: [['both', 'TCP and UDP'], ['tcp', 'TCP'], ['udp', 'UDP']], value: o.protocol || 'both' }),
      field('Longest lease (seconds)', 'max_lease_secs', { form: 'rule', value: o.max_lease_secs, inputmode: 'numeric',
        hint: 'Empty: the setting above (' + cfg.max_lease_secs + ').' }),
      field('Comment', 'comment', { form: 'rule', value: o.comment }),
      h('span', { 'class': 'err', 'data-for': '_' }),
      h('div', { 'class': 'row' },
        h('button', { type: 'submit', id: 'upnp-rule-submit', text: index === null ? 'Add' : 'Save' }),
        index === null ? null : h('button', { type: 'button', 'class': 'secondary', text: 'Cancel', onclick: P.route })));
    f.addEventListener('submit', function (e) {
      e.preventDefault();
      var rule = { hosts: P.list(val(f, 'hosts')), macs: P.list(val(f, 'macs')),
        external_ports: P.port(val(f, 'external_ports')), protocol: val(f, 'protocol'), comment: val(f, 'comment') };
      if (val(f, 'internal_ports')) rule.internal_ports = P.port(val(f, 'internal_ports'));
      if (val(f, 'max_lease_secs')) rule.max_lease_secs = P.port(val(f, 'max_lease_secs'));
      var next = copy(cfg), at = index === null ? next.allow.length : index;
      next.allow[at] = rule;
      save(next, tag, f, 'upnp.allow[' + at + ']', index === null ? 'Rule added.' : 'Rule saved.');
    });
    return f;
  }

  function rulesTable(cfg, tag, showForm) {
    // Only `ask` mode has approvals: in the other modes no rule means every request is refused.
    if (!cfg.allow.length) return h('p', { 'class': 'muted', id: 'upnp-rules-none', text: cfg.mode === 'ask' ?
      'No rules: every request waits for your approval.' : 'No rules: every request is refused.' });
    return h('table', { 'class': 'stack', id: 'upnp-rules' },
      h('thead', null, h('tr', null, ['Devices', 'Ports', 'Protocol', 'Lease', 'Comment', ''].map(function (t) { return h('th', { text: t }); }))),
      h('tbody', null, cfg.allow.map(function (r, i) {
        var who = (r.hosts || []).concat(r.macs || []).join(', ') || 'nobody';
        return h('tr', { 'data-rule': String(i) },
          td('Devices', who),
          td('Ports', r.external_ports + ' → ' + (r.internal_ports || 'any')),
          td('Protocol', P.proto(r.protocol || 'both')),
          td('Lease', P.dur(r.max_lease_secs || cfg.max_lease_secs)),
          td('Comment', r.comment || ''),
          td('', h('span', { 'class': 'actions' },
            h('button', { type: 'button', 'class': 'secondary', 'data-edit': String(i), text: 'Edit', onclick: function () { showForm(i); } }),
            P.twoStep(h('button', { type: 'button', 'class': 'danger', 'data-del': String(i), text: 'Delete' }), 'Delete', function () {
              var next = copy(cfg);
              next.allow.splice(i, 1);
              save(next, tag, null, '', 'Rule deleted.');
            }))));
      })));
  }

  // ---- live part: warnings, mappings, approval queue (redrawn every 5 s) ------
  function warningsOf(d) {
    var out = [];
    if (d.upnp.mode === 'off') {
      out.push(h('p', { 'class': 'banner warn', id: 'upnp-off', text: 'Port mapping is off: devices asking with UPnP, NAT-PMP or PCP ' +
        'find no gateway, and only your own forwards are open.' }));
    } else if (!d.listening) {
      out.push(h('p', { 'class': 'banner warn', id: 'upnp-not-listening', text: 'The port-mapping servers are not running' +
        (d.listen_error ? ': ' + d.listen_error : ' yet (the router is starting, or the LAN has no address).') }));
    }
    if (d.external && d.external.not_public) {
      out.push(h('p', { 'class': 'banner warn', id: 'upnp-behind-nat', text: 'Your router\'s internet address (' + d.external.addr +
        ') is private or shared (CGNAT): mappings here do not make a device reachable from the internet — your router is behind another NAT.' }));
    } else if (d.external && !d.external.addr && d.upnp.mode !== 'off') {
      out.push(h('p', { 'class': 'banner warn', text: 'The internet side has no address yet: no mapping can be granted.' }));
    }
    return out;
  }

  function decide(p, decision, label) {
    api('POST', '/upnp/pending/' + encodeURIComponent(p.id), { decision: decision }).then(function (r) {
      if (r.status === 404) P.flash('That request is no longer waiting (decided elsewhere, or it expired).', 'warn');
      else if (r.ok) P.flash(label + (r.body.rule ? ' A rule was added for ' + p.client + '.' : ''));
      else P.flash(r.body.issues ? r.body.issues.map(function (i) { return i.field + ': ' + i.message; }).join(' ') : r.body.error, 'bad');
      P.route();
    });
  }

  function pendingTable(d) {
    if (d.upnp.mode !== 'ask' && !d.pending.length) return null;
    return [h('h2', { text: 'Waiting for your approval' }),
      d.pending.length ? h('table', { 'class': 'stack', id: 'upnp-pending' },
        h('thead', null, h('tr', null, ['Device', 'Wants', 'Description', 'Asked with', 'When', ''].map(function (t) { return h('th', { text: t }); }))),
        h('tbody', null, d.pending.map(function (p) {
          return h('tr', { 'data-pending': String(p.id) },
            td('Device', p.client + (p.mac ? ' (' + p.mac + ')' : '')),
            // "Any" port: approving gives the device its own port number outside too.
            td('Wants', p.proto + ' ' + (p.external_port ? p.external_port : 'any (approving gives ' + p.internal_port + ')') + ' → port ' + p.internal_port),
            td('Description', p.description || '–'),
            td('Asked with', VIA[p.via] || p.via),
            td('When', P.when(p.last_asked) + (p.asks > 1 ? ' (' + p.asks + ' times since ' + P.when(p.first_asked) + ')' : '')),
            td('', h('span', { 'class': 'actions' },
              h('button', { type: 'button', 'data-decide': 'once', text: 'Approve once', onclick: function () { decide(p, 'once', 'Approved once.'); } }),
              h('button', { type: 'button', 'class': 'secondary', 'data-decide': 'always', text: 'Always for this host and these ports',
                onclick: function () { decide(p, 'always', 'Approved.'); } }),
              h('button', { type: 'button', 'class': 'danger', 'data-decide': 'deny', text: 'Deny', onclick: function () { decide(p, 'deny', 'Denied.'); } }))));
        }))) : h('p', { 'class': 'muted', text: 'Nothing is waiting.' })];
  }

  function revoked(what) {
    return function (r) {
      if (r.ok) P.flash(what + (r.body.revoked !== undefined ? ' (' + r.body.revoked + ' closed)' : ''));
      else P.flash(r.body.error || 'The router refused.', r.status === 404 ? 'warn' : 'bad');
      P.route();
    };
  }

  function mappingsTable(d) {
    if (!d.mappings.length) return h('p', { 'class': 'muted', id: 'upnp-mappings-none', text: 'No device holds a mapping now.' });
    return [h('table', { 'class': 'stack', id: 'upnp-mappings' },
      h('thead', null, h('tr', null, ['Port', 'Goes to', 'Via', 'Device', 'Description', 'Time left', ''].map(function (t) { return h('th', { text: t }); }))),
      h('tbody', null, d.mappings.map(function (m) {
        return h('tr', { 'data-mapping': m.proto + '/' + m.external_port },
          td('Port', m.proto + ' ' + m.external_port + (m.remote_host ? ' (only from ' + m.remote_host + ')' : '')),
          td('Goes to', m.client + ':' + m.internal_port),
          td('Via', VIA[m.via] || m.via),
          td('Device', m.mac || 'MAC unknown'),
          td('Description', m.description || '–'),
          td('Time left', h('span', { 'data-left': String(m.secs_left), text: P.dur(m.secs_left) })),
          td('', h('span', { 'class': 'actions' },
            h('button', { type: 'button', 'class': 'danger', 'data-revoke': m.proto + '/' + m.external_port, text: 'Revoke', onclick: function () {
              api('DELETE', '/upnp/mappings/' + m.proto + '/' + m.external_port).then(revoked('Mapping ' + m.proto + ' ' + m.external_port + ' revoked.'));
            } }),
            P.twoStep(h('button', { type: 'button', 'class': 'danger', 'data-revoke-host': m.client, text: 'Revoke all of this host' }),
              'Revoke all of this host', function () {
                api('POST', '/upnp/revoke', { host: m.client }).then(revoked('Mappings of ' + m.client + ' revoked.'));
              }))));
      }))),
    h('div', { 'class': 'row' }, P.twoStep(h('button', { type: 'button', 'class': 'danger', id: 'upnp-revoke-all', text: 'Revoke all' }), 'Revoke all', function () {
      api('POST', '/upnp/revoke', { all: true }).then(revoked('All mappings revoked.'));
    }))];
  }

  function live(d) {
    return h('div', { id: 'upnp-live' }, warningsOf(d), pendingTable(d),
      h('h2', { text: 'Mappings now' }),
      h('p', { 'class': 'hint', text: 'Ports LAN devices opened themselves. A revoked device may ask again; change the mode or rules to stop it.' }),
      mappingsTable(d));
  }

  // What the live part shows, without the seconds that tick.
  function signature(d) {
    return JSON.stringify([d.upnp.mode, d.external, d.listening, d.listen_error, d.pending,
      d.mappings.map(function (m) { var c = copy(m); delete c.secs_left; return c; })]);
  }

  function upnpPage() {
    return api('GET', '/upnp').then(function (r) {
      if (!r.ok) {
        P.show('UPnP', h('h1', { text: 'UPnP' }), h('p', { 'class': 'banner bad', text: r.body.error || 'The router did not answer.' }));
        return;
      }
      var d = r.body, cfg = d.upnp, tag = r.etag || d.etag, seen = signature(d);
      cfg.allow = cfg.allow || [];
      var slot = h('div', null, ruleForm(cfg, tag, null));
      function showForm(i) { slot.textContent = ''; slot.appendChild(ruleForm(cfg, tag, i)); slot.querySelector('input,textarea').focus(); }
      var liveEl = live(d);
      P.show('UPnP', h('h1', { text: 'UPnP and port mapping' }),
        h('p', { 'class': 'muted', text: 'Games, consoles and call apps can ask the router to open ports for them ' +
          '(UPnP IGD, NAT-PMP, PCP). Here you decide who may, and see and close what is open.' }),
        liveEl, modeForm(cfg, tag), h('h2', { text: 'Rules: who may open which ports' }), rulesTable(cfg, tag, showForm), slot);
      P.poll(function () {
        api('GET', '/upnp').then(function (n) {
          if (!n.ok || !liveEl.isConnected) return;
          // Only the live part is redrawn: forms being edited stay (a save after a change
          // made elsewhere answers 409 and reloads).
          var s = signature(n.body);
          if (s !== seen) {
            seen = s;
            var fresh = live(n.body);
            liveEl.replaceWith(fresh);
            liveEl = fresh;
          } else {
            n.body.mappings.forEach(function (m) {
              var cell = liveEl.querySelector('tr[data-mapping="' + m.proto + '/' + m.external_port + '"] [data-left]');
              if (cell) cell.textContent = P.dur(m.secs_left);
            });
          }
        });
      });
    });
  }

  P.register('upnp', upnpPage);
})();
