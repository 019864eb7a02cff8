// Headless LuCI harness. STAND-INS (not LuCI's code): E, _, L, view, form, rpc, poll, uci, network.
// They implement only what Sluice's views use, with LuCI's names and call shapes; form renders one
// input per option with LuCI's `cbid.<config>.<section>.<option>` naming so the test can read the DOM.
// REAL: the view / protocol file named by ?src=, loaded the way LuCI's L.require does (its 'require x'
// lines become local variables), and run through load() -> render() -> poll once.
'use strict';

var H = { rpc: [], polls: [], patterns: [], protocols: {}, depends: [] };
var FIX = { uci: {}, rpc: {} };

function _(s) { return s; }

function E(tag, attrs, children) {
	var el = document.createElement(tag);
	if (Array.isArray(attrs) || typeof attrs === 'string' || attrs instanceof Node) { children = attrs; attrs = {}; }
	Object.keys(attrs || {}).forEach(function(k) {
		var v = attrs[k];
		if (typeof v === 'function') el.addEventListener(k, v);
		else if (v !== null && v !== undefined) el.setAttribute(k, v);
	});
	(function add(c) {
		if (c === null || c === undefined || c === '') return;
		if (Array.isArray(c)) c.forEach(add);
		else if (c instanceof Node) el.appendChild(c);
		else el.appendChild(document.createTextNode(String(c)));
	})(children);
	return el;
}

var L = {
	resolveDefault: function(p, d) { return Promise.resolve(p).catch(function() { return d; }); }
};

var view = {
	extend: function(proto) {
		function View() {}
		View.prototype = proto;
		return View;
	}
};

var uci = {
	load: function(conf) { return Promise.resolve(conf); },
	sections: function(conf, type) {
		var c = FIX.uci[conf] || {};
		return Object.keys(c).filter(function(sid) { return !type || c[sid]['.type'] === type; })
			.map(function(sid) { return Object.assign({ '.name': sid }, c[sid]); });
	},
	get: function(conf, sid, opt) { var c = FIX.uci[conf] || {}; return c[sid] ? c[sid][opt] : undefined; }
};

// rpc: declare() as luci-base's rpc.js does it (declare, handleCallReply): the fixture holds what uhttpd's /ubus
// would answer in `result` -- [0, object] for a reply, [code] for a failed call (rpcd "Invalid argument" is [2]).
// A fixture value that is an object stands for [0, value], a number for [value]; 'reject' for an HTTP failure.
// Like rpc.js, a failed call is NOT a rejection unless `reject: true`: the promise resolves with the code, after
// `expect` and `filter` are applied exactly as handleCallReply applies them.
var rpc = {
	declare: function(d) {
		return function() {
			var args = Array.prototype.slice.call(arguments), params = {};
			(d.params || []).forEach(function(p, i) { if (args[i] !== undefined) params[p] = args[i]; });
			var key = d.object + '.' + d.method;
			H.rpc.push({ call: key, params: params });
			var r = FIX.rpc[key];
			if (r === undefined || r === 'reject') return Promise.reject(new Error('rpc ' + key + ' not available'));
			var result = (typeof(r) == 'number') ? [ r ] : [ 0, JSON.parse(JSON.stringify(r)) ];
			if (d.reject && result[0] !== 0) return Promise.reject(new Error('ubus code ' + result[0]));
			var ret = (result.length > 1) ? result[1] : result[0], type = Object.prototype.toString;
			if (d.expect) {
				for (var k in d.expect) {
					if (ret != null && k != '') ret = ret[k];
					if (ret == null || type.call(ret) != type.call(d.expect[k])) ret = d.expect[k];
					break;
				}
			}
			if (typeof(d.filter) == 'function') ret = d.filter(ret, params);
			return Promise.resolve(ret);
		};
	},
	getStatusText: function(code) {
		return ({ 0: 'Command OK', 1: 'Invalid command', 2: 'Invalid argument', 3: 'Method not found',
			4: 'Resource not found', 5: 'No data received', 6: 'Permission denied', 7: 'Request timeout' })[code]
			|| 'Unknown error code';
	}
};

var poll = { add: function(fn, interval) { H.polls.push({ fn: fn, interval: interval }); } };

function AbstractValue(name, title, description) { this.option = name; this.title = title; this.description = description; }
AbstractValue.prototype.depends = function(k, v) { H.depends.push([this.option, k, v]); };
AbstractValue.prototype.cfgvalue = function(conf, sid) {
	var v = uci.get(conf, sid, this.option);
	return (v === undefined) ? this.default : v;
};
AbstractValue.prototype.widget = function(conf, sid) {
	var v = this.cfgvalue(conf, sid);
	return E('input', { 'type': this.password ? 'password' : 'text', 'name': this.cbid(conf, sid),
		'value': v === undefined ? '' : v, 'placeholder': this.placeholder, 'data-datatype': this.datatype });
};
AbstractValue.prototype.cbid = function(conf, sid) { return 'cbid.' + conf + '.' + sid + '.' + this.option; };

function Value() { AbstractValue.apply(this, arguments); }
Value.prototype = Object.create(AbstractValue.prototype);
function Flag() { AbstractValue.apply(this, arguments); }
Flag.prototype = Object.create(AbstractValue.prototype);
Flag.prototype.widget = function(conf, sid) {
	var a = { 'type': 'checkbox', 'name': this.cbid(conf, sid), 'value': '1' };
	if (this.cfgvalue(conf, sid) === '1') a.checked = 'checked';
	return E('input', a);
};
// form.Button: a button per section; onclick(ev, section_id) as in form.js.
function Button() { AbstractValue.apply(this, arguments); }
Button.prototype = Object.create(AbstractValue.prototype);
Button.prototype.widget = function(conf, sid) {
	var self = this;
	return E('button', { 'class': 'cbi-button cbi-button-' + (this.inputstyle || 'button'), 'name': this.cbid(conf, sid),
		'click': function(ev) { return self.onclick(ev, sid); } }, this.inputtitle || this.title);
};
// form.js: AbstractValue.getUIElement(section_id) -> the widget, with getValue/setValue
AbstractValue.prototype.getUIElement = function(sid) {
	var el = document.querySelector('[name="' + this.cbid(this.map.config, sid) + '"]');
	return { getValue: function() { return el.value; }, setValue: function(v) { el.value = v; } };
};
// form.ListValue: value(key, title) adds a choice (form.js keeps keylist/vallist); rendered as a select
function ListValue() { AbstractValue.apply(this, arguments); this.keylist = []; this.vallist = []; }
ListValue.prototype = Object.create(AbstractValue.prototype);
ListValue.prototype.value = function(key, val) {
	this.keylist.push(String(key)); this.vallist.push((val != null) ? val : key);
};
ListValue.prototype.widget = function(conf, sid) {
	var v = this.cfgvalue(conf, sid), self = this;
	return E('select', { 'name': this.cbid(conf, sid) }, this.keylist.map(function(k, i) {
		var a = { 'value': k };
		if (k === v) a.selected = 'selected';
		return E('option', a, self.vallist[i]);
	}));
};
function DynamicList() { AbstractValue.apply(this, arguments); }
DynamicList.prototype = Object.create(AbstractValue.prototype);
DynamicList.prototype.widget = function(conf, sid) {
	var v = this.cfgvalue(conf, sid) || [], name = this.cbid(conf, sid);
	if (!Array.isArray(v)) v = [ v ];
	return E('ul', { 'class': 'dynlist', 'data-name': name }, v.map(function(x) { return E('li', { 'data-value': x }, x); }));
};

// LuCI renders option descriptions as HTML
function descr(html) { var d = E('span', { 'class': 'cbi-value-description' }); d.innerHTML = html; return d; }

function TypedSection(map, type, title) { this.map = map; this.sectiontype = type; this.title = title; this.children = []; }
TypedSection.prototype.option = function(cls, name, title, desc) {
	var o = new cls(name, title, desc); o.map = this.map; o.section = this; this.children.push(o); return o;
};
TypedSection.prototype.taboption = function(tab, cls, name, title, desc) {
	var o = this.option(cls, name, title, desc); o.tab = tab; return o;
};
TypedSection.prototype.tab = function() {};
TypedSection.prototype.sids = function() { return uci.sections(this.map.config, this.sectiontype).map(function(s) { return s['.name']; }); };
TypedSection.prototype.render = function() {
	var self = this, conf = this.map.config;
	return E('fieldset', { 'class': 'cbi-section', 'data-section-type': this.sectiontype }, [
		E('legend', {}, this.title),
		this.sids().map(function(sid) {
			return E('div', { 'class': 'cbi-section-node', 'id': 'cbi-' + conf + '-' + sid }, [
				self.anonymous ? '' : E('h4', {}, sid),
				self.children.map(function(o) {
					return E('div', { 'class': 'cbi-value', 'data-tab': o.tab }, [
						E('label', { 'class': 'cbi-value-title' }, o.title), o.widget(conf, sid),
						o.description ? descr(o.description) : '' ]);
				}) ]);
		}) ]);
};
function TableSection() { TypedSection.apply(this, arguments); }
TableSection.prototype = Object.create(TypedSection.prototype);
TableSection.prototype.render = function() {
	var self = this, conf = this.map.config;
	return E('fieldset', { 'class': 'cbi-section', 'data-section-type': this.sectiontype }, [
		E('legend', {}, this.title),
		E('table', { 'class': 'table cbi-section-table' }, [
			E('tr', { 'class': 'tr table-titles' }, self.children.map(function(o) { return E('th', {}, o.title); }))
		].concat(this.sids().map(function(sid) {
			return E('tr', { 'class': 'tr cbi-section-table-row', 'id': 'cbi-' + conf + '-' + sid },
				self.children.map(function(o) { return E('td', {}, o.widget(conf, sid)); }));
		}))),
		this.addremove ? E('button', { 'class': 'cbi-button-add' }, _('Add')) : '' ]);
};

function Map(config, title, description) { this.config = config; this.title = title; this.description = description; this.sections = []; }
Map.prototype.section = function(cls, type, title) { var s = new cls(this, type, title); this.sections.push(s); return s; };
// form.js: Map.lookupOption(name, section_id) -> [ option, section_id ]
Map.prototype.lookupOption = function(name, sid) {
	for (var i = 0; i < this.sections.length; i++)
		for (var j = 0; j < this.sections[i].children.length; j++)
			if (this.sections[i].children[j].option == name) return [ this.sections[i].children[j], sid ];
	return null;
};
Map.prototype.render = function() {
	return Promise.resolve(E('div', { 'class': 'cbi-map', 'id': 'cbi-' + this.config }, [
		E('h2', {}, this.title), E('div', { 'class': 'cbi-map-descr' }, this.description),
		this.sections.map(function(s) { return s.render(); }) ]));
};

var form = { Map: Map, TypedSection: TypedSection, TableSection: TableSection, NamedSection: TypedSection,
	Value: Value, Flag: Flag, DynamicList: DynamicList, ListValue: ListValue, Button: Button };

var network = {
	registerPatternVirtual: function(re) { H.patterns.push(re); },
	registerProtocol: function(name, proto) { H.protocols[name] = proto; return proto; },
	getIfnameOf: function(x) { return x; }
};

var MODULES = { view: view, form: form, rpc: rpc, poll: poll, uci: uci, network: network };

function loadModule(src) {
	return fetch(src).then(function(r) {
		if (!r.ok) throw new Error('cannot fetch ' + src);
		return r.text();
	}).then(function(text) {
		// LuCI's L.require: each 'require a.b [as c]' line binds the module to a local variable
		var names = [], values = [], re = /^'require ([\w.]+)(?: as (\w+))?';$/mg, m;
		while ((m = re.exec(text)) !== null) {
			if (!(m[1] in MODULES)) throw new Error('harness has no stand-in for ' + m[1]);
			names.push(m[2] || m[1].split('.').pop()); values.push(MODULES[m[1]]);
		}
		return Function.apply(null, names.concat([ text ])).apply(null, values);
	});
}

function finish(result) {
	document.getElementById('harness-result').textContent = JSON.stringify(result);
	document.title = 'harness-done';
}

function runProtocol(proto) {
	var name = Object.keys(H.protocols)[0], p = H.protocols[name];
	var ctx = Object.create(p); ctx.sid = FIX.sid || 'vpn'; ctx._ubus = function() { return null; };
	var m = new Map('network', p.getI18n(), '');
	var s = m.section(TypedSection, 'interface', _('Interface') + ' ' + ctx.sid);
	s.sids = function() { return [ ctx.sid ]; };
	p.renderFormOptions(s);
	return m.render().then(function(node) {
		document.getElementById('view').appendChild(node);
		return { name: name, i18n: p.getI18n(), ifname: p.getIfname.call(ctx), pkg: p.getOpkgPackage(),
			floating: p.isFloating(), virtual: p.isVirtual(), devices: p.getDevices(),
			patterns: H.patterns.map(String), matches: H.patterns.map(function(re) { return re.test(p.getIfname.call(ctx)); }) };
	});
}

function run() {
	var q = new URLSearchParams(location.search);
	return fetch(q.get('fixture')).then(function(r) { return r.json(); }).then(function(fix) {
		FIX = fix;
		return loadModule(q.get('src'));
	}).then(function(mod) {
		if (q.get('kind') === 'protocol') return runProtocol(mod);
		var v = new mod();
		return Promise.resolve(v.load()).then(function(data) { return v.render(data); }).then(function(node) {
			document.getElementById('view').appendChild(node);
			var before = H.rpc.length;
			if (FIX.rpc_after_poll) FIX.rpc = FIX.rpc_after_poll;  // the second answer, seen only by the poller
			return Promise.all(H.polls.map(function(p) { return p.fn(); })).then(function() {
				var polled = H.rpc.slice(before), after = H.rpc.length;
				// then what a user clicks (FIX.clicks: CSS selectors, in order), and what inputs hold afterwards
				return (FIX.clicks || []).reduce(function(p, sel) {
					return p.then(function() {
						var el = document.querySelector(sel);
						if (!el) throw new Error('nothing to click at ' + sel);
						el.click();
						return new Promise(function(r) { setTimeout(r, 50); });
					});
				}, Promise.resolve()).then(function() {
					var values = {};
					(FIX.read || []).forEach(function(sel) { var el = document.querySelector(sel); values[sel] = el ? el.value : null; });
					return { polled_rpc: polled, clicked_rpc: H.rpc.slice(after), values: values };
				});
			});
		});
	}).then(function(extra) {
		finish(Object.assign({ ok: true, rpc: H.rpc, polls: H.polls.map(function(p) { return p.interval; }),
			depends: H.depends }, extra));
	}).catch(function(e) {
		finish({ ok: false, error: String(e && e.stack || e) });
	});
}

run();
