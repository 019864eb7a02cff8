'use strict';
'require view';
'require form';
'require rpc';
'require poll';
'require uci';

// Sluice VPN server: settings of the `config server` sections of /etc/config/sluice, the users table
// (`config user`) and a one-line live summary from the rpcd plugin (ubus object `sluice`). Who is connected,
// with a disconnect button per user, is on the Status page; set-up for each user's device on the Clients page.

function asObject(reply) {
	if (reply !== null && typeof(reply) == 'object' && !Array.isArray(reply))
		return reply;
	return { error: (typeof(reply) == 'number') ? rpc.getStatusText(reply) : _('no answer from the router') };
}

var callStatus = rpc.declare({ object: 'sluice', method: 'status', params: [ 'name' ], filter: asObject });

// A strong pre-shared key made in the browser, the same form as `sluice genpsk`: 32 random bytes from the
// browser's CSPRNG, base64url without padding (43 characters of A-Z a-z 0-9 - _), never starting with '-'.
function genpsk() {
	var raw = new Uint8Array(32), s = '';
	window.crypto.getRandomValues(raw);
	for (var i = 0; i < raw.length; i++)
		s += String.fromCharCode(raw[i]);
	var key = btoa(s).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
	for (var j = 0; j < key.length && key.charAt(0) == '-'; j++)
		key = key.substring(1) + key.charAt(0);
	return key;
}

function statusText(st) {
	if (!st || st.error)
		return _('Not running') + (st && st.error ? ' (' + st.error + ')' : '');
	var users = 0;
	(st.tunnels || []).forEach(function(t) { users += (t.sessions || []).length; });
	var sas = (st.transport && st.transport.sas) ? st.transport.sas.length : 0;
	return _('Running') + ': ' + users + ' ' + _('connected') + ', ' + (st.tunnels || []).length + ' ' +
		_('tunnels') + ', ' + sas + ' ' + _('IPsec SAs') + (st.last_error ? ' — ' + _('last error') + ': ' + st.last_error : '');
}

return view.extend({
	load: function() {
		return Promise.all([
			uci.load('sluice'),
			callStatus('main')
		]);
	},

	render: function(data) {
		var m, s, o;
		var statusNode = E('div', { 'class': 'cbi-section', 'id': 'sluice-server-status' }, [
			E('h3', {}, _('Status')),
			E('p', { 'class': 'sluice-status-text' }, statusText(data[1]))
		]);

		poll.add(function() {
			return callStatus('main').then(function(st) {
				statusNode.querySelector('.sluice-status-text').textContent = statusText(st);
			});
		}, 5);

		m = new form.Map('sluice', _('L2TP/IPsec VPN server'),
			_('Accepts the built-in L2TP/IPsec clients of Windows, macOS, iOS, Android and Linux. UDP 500 and 4500 are opened on the WAN; L2TP (UDP 1701) is only accepted inside IPsec.'));

		s = m.section(form.TypedSection, 'server', _('Server'));
		s.anonymous = false;
		s.addremove = false;

		o = s.option(form.Flag, 'enabled', _('Enable'));
		o.default = '0';
		o.rmempty = false;

		o = s.option(form.Flag, 'ipsec', _('Require IPsec'),
			_('Turning this off accepts plain, unencrypted L2TP.'));
		o.default = '1';

		o = s.option(form.Value, 'psk', _('Pre-shared key'),
			_('Every device needs this key. Press Generate for a strong one, then Save & Apply.'));
		o.password = true;
		o.rmempty = false;
		o.depends('ipsec', '1');

		o = s.option(form.Button, '_genpsk', ' ');
		o.inputtitle = _('Generate');
		o.inputstyle = 'action';
		o.depends('ipsec', '1');
		o.onclick = function(ev, section_id) {
			var psk = this.map.lookupOption('psk', section_id)[0];
			psk.getUIElement(section_id).setValue(genpsk());
		};

		o = s.option(form.Value, 'public_host', _('Address clients dial'),
			_('The router\'s WAN address or dynamic-DNS name; used in the set-up instructions on the Clients page.'));
		o.datatype = 'host(0)';

		o = s.option(form.Flag, 'legacy', _('Legacy ciphers'),
			_('Adds 3DES, MD5 and MODP1024 for Android up to 11 and older clients.'));

		o = s.option(form.ListValue, 'datapath', _('Data path'),
			_('Automatic: the kernel (faster, less memory, uses the router\'s crypto engine) when its IPsec, L2TP and PPP modules are installed, else Sluice itself. The status page says which is in use.'));
		o.value('auto', _('Automatic'));
		o.value('kernel', _('Kernel'));
		o.value('user', _('Sluice (user space)'));
		o.default = 'auto';

		o = s.option(form.Value, 'local_ip', _('Server address in the tunnel'));
		o.datatype = 'ip4addr';
		o.placeholder = '10.77.0.1';

		o = s.option(form.Value, 'pool_start', _('First client address'));
		o.datatype = 'ip4addr';
		o.placeholder = '10.77.0.10';

		o = s.option(form.Value, 'pool_end', _('Last client address'));
		o.datatype = 'ip4addr';
		o.placeholder = '10.77.0.250';

		o = s.option(form.DynamicList, 'dns', _('DNS servers for clients'));
		o.datatype = 'ip4addr';

		s = m.section(form.TableSection, 'user', _('Users'));
		s.anonymous = true;
		s.addremove = true;

		o = s.option(form.Flag, 'enabled', _('Enabled'));
		o.default = '1';

		o = s.option(form.Value, 'username', _('Username'));
		o.rmempty = false;

		o = s.option(form.Value, 'password', _('Password'));
		o.password = true;
		o.rmempty = false;

		o = s.option(form.Value, 'ip', _('Fixed address'));
		o.datatype = 'ip4addr';
		o.optional = true;

		return m.render().then(function(mapNode) {
			return E('div', {}, [ statusNode, mapNode ]);
		});
	}
});
