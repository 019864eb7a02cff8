'use strict';
'require view';
'require rpc';
'require uci';

// Client set-up: for each user, the exact steps and values for Windows, macOS/iOS, Android and Linux, from
// `ubus call sluice client_setup '{"user": ...}'` (the same text as `sluice client-setup USER`). The answer
// holds the user's password and the pre-shared key, so the method is in the write ACL. All of it is shown as
// text (E() text nodes, <pre>), never parsed as HTML; the Apple profile is offered as a file download.

function asObject(reply) {
	if (reply !== null && typeof(reply) == 'object' && !Array.isArray(reply))
		return reply;
	return { error: (typeof(reply) == 'number') ? rpc.getStatusText(reply) : _('no answer from the router') };
}

var callSetup = rpc.declare({ object: 'sluice', method: 'client_setup', params: [ 'user', 'name' ], filter: asObject });

function steps(list) {
	return E('ol', {}, (list || []).map(function(s) { return E('li', {}, s); }));
}

function copyBox(cls, text) {
	return E('pre', { 'class': 'sluice-copy ' + cls, 'style': 'white-space:pre-wrap;word-break:break-all' }, text);
}

function download(filename, text) {
	var blob = new Blob([ text ], { type: 'application/x-apple-aspen-config' });
	var a = E('a', { 'href': URL.createObjectURL(blob), 'download': filename });
	document.body.appendChild(a);
	a.click();
	document.body.removeChild(a);
}

function renderSetup(d) {
	if (d.error)
		return E('p', { 'class': 'alert-message warning sluice-setup-error' }, d.error);
	var out = [
		E('p', { 'class': 'sluice-setup-summary' }, _('Server') + ': ' + d.server + ' — ' + _('user name') + ': ' + d.user),
		E('table', { 'class': 'table sluice-secrets' }, [
			E('tr', { 'class': 'tr' }, [ E('td', { 'class': 'td' }, _('Password')), E('td', { 'class': 'td' }, E('code', {}, d.password)) ]),
			E('tr', { 'class': 'tr' }, [ E('td', { 'class': 'td' }, _('Pre-shared key (shared secret)')), E('td', { 'class': 'td' }, E('code', {}, d.psk)) ])
		])
	];
	if (d.windows)
		out.push(E('div', { 'class': 'cbi-section sluice-os', 'data-os': 'windows' }, [
			E('h3', {}, _('Windows 10 and 11')), steps(d.windows.steps),
			copyBox('sluice-powershell', d.windows.powershell),
			E('p', {}, _('Behind NAT (Windows error 809), in an administrator Command Prompt, then restart:')),
			copyBox('sluice-registry', d.windows.registry_nat)
		]));
	if (d.apple)
		out.push(E('div', { 'class': 'cbi-section sluice-os', 'data-os': 'apple' }, [
			E('h3', {}, _('macOS, iPhone and iPad')), steps(d.apple.steps),
			E('button', { 'class': 'cbi-button cbi-button-action sluice-mobileconfig', 'data-filename': d.apple.filename,
				'click': function() { download(d.apple.filename, d.apple.mobileconfig); } },
				_('Download profile') + ' (' + d.apple.filename + ')')
		]));
	if (d.android)
		out.push(E('div', { 'class': 'cbi-section sluice-os', 'data-os': 'android' }, [
			E('h3', {}, _('Android (up to 11)')), steps(d.android.steps),
			E('table', { 'class': 'table sluice-android' }, d.android.fields.map(function(f) {
				return E('tr', { 'class': 'tr' }, [ E('td', { 'class': 'td' }, f[0]), E('td', { 'class': 'td' }, E('code', {}, f[1])) ]);
			}))
		]));
	if (d.linux)
		out.push(E('div', { 'class': 'cbi-section sluice-os', 'data-os': 'linux' }, [
			E('h3', {}, _('Linux (NetworkManager)')), steps(d.linux.steps),
			copyBox('sluice-nmcli', d.linux.nmcli), copyBox('sluice-nmcli-up', d.linux.connect)
		]));
	return E('div', {}, out);
}

return view.extend({
	handleSaveApply: null,
	handleSave: null,
	handleReset: null,

	load: function() {
		return uci.load('sluice');
	},

	render: function() {
		var users = uci.sections('sluice', 'user').filter(function(u) { return u.username && u.enabled !== '0'; })
			.map(function(u) { return u.username; });
		var body = E('div', { 'id': 'sluice-setup-body' });
		var show = function(user) {
			return callSetup(user).then(function(d) {
				while (body.firstChild)
					body.removeChild(body.firstChild);
				body.appendChild(renderSetup(d));
			});
		};
		var select = E('select', { 'class': 'cbi-input-select', 'id': 'sluice-setup-user',
			'change': function(ev) { return show(ev.target.value); } },
			users.map(function(u) { return E('option', { 'value': u }, u); }));
		var page = E('div', {}, [
			E('h2', {}, _('Set up a phone or computer')),
			E('p', {}, _('Choose a user; the steps below are what that person does on their device. They contain the password and the pre-shared key: hand them over privately.')),
			users.length ? E('p', {}, [ E('label', { 'for': 'sluice-setup-user' }, _('User') + ' '), select ]) :
				E('p', { 'class': 'alert-message' }, _('Add a user on the Server page first.')),
			body
		]);
		return users.length ? show(users[0]).then(function() { return page; }) : page;
	}
});
