# Stand-in for OpenWrt's /lib/functions.sh (tests only). UCI state is shell variables as in the real
# file (CONFIG_SECTIONS, CONFIG_<section>_TYPE, CONFIG_<section>_<option>), loaded by config_load from
# $UCI_FIXTURES/<package>.sh, which the tests generate from UCI text with sluice's own UCI parser.
. "$STUBS/record.sh"

config_load() {
	record config_load "$1"
	CONFIG_SECTIONS=""
	. "$UCI_FIXTURES/$1.sh"
}

config_get() {
	local __var="$1" __sec="$2" __opt="$3" __def="$4" __cv
	eval "__cv=\"\${CONFIG_${__sec}_${__opt}-\$__def}\""
	eval "$__var=\"\$__cv\""
}

config_get_bool() {
	local __bvar="$1" __b
	config_get __b "$2" "$3" "$4"
	case "$__b" in
	1|on|true|yes|enabled) __b=1 ;;
	0|off|false|no|disabled) __b=0 ;;
	*) __b="$4" ;;
	esac
	eval "$__bvar=\"\$__b\""
}

config_foreach() {
	local __fn="$1" __type="$2" __s __t
	for __s in $CONFIG_SECTIONS; do
		eval "__t=\"\$CONFIG_${__s}_TYPE\""
		[ -z "$__type" ] || [ "$__t" = "$__type" ] || continue
		"$__fn" "$__s"
	done
}

logger() { record logger "$@"; }
