# Stand-in for /usr/share/libubox/jshn.sh (tests only), enough for the rpcd plugin: json_load/json_get_var
# read one level of a JSON object (through python3), json_init/json_add_*/json_dump build a flat object.
json_load() {
	__JSON_IN="$1"
	printf '%s' "$1" | python3 -c 'import json,sys; d=json.load(sys.stdin); assert isinstance(d, dict)' 2>/dev/null
}
json_get_var() {
	local __v
	__v="$(printf '%s' "$__JSON_IN" | python3 -c 'import json,sys; v=json.load(sys.stdin).get(sys.argv[1], ""); print(v if isinstance(v, str) else json.dumps(v))' "$2")"
	eval "$1=\"\$__v\""
}
json_init() { __JSON_OUT=""; }
json_add_string() {
	local __e
	__e="$(python3 -c 'import json,sys; print(json.dumps(sys.argv[1]) + ": " + json.dumps(sys.argv[2]))' "$1" "$2")"
	__JSON_OUT="${__JSON_OUT:+$__JSON_OUT, }$__e"
}
json_add_boolean() {
	local __b=false
	[ "$2" = 1 ] && __b=true
	__JSON_OUT="${__JSON_OUT:+$__JSON_OUT, }\"$1\": $__b"
}
json_dump() { printf '{ %s }\n' "$__JSON_OUT"; }
