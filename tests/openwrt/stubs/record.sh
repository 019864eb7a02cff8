# Shared recorder for the OpenWrt stand-ins: every stubbed call appends one line to $CALLS:
# the function name and its arguments, separated by tabs.
record() {
	local IFS='	'
	printf '%s\n' "$*" >> "$CALLS"
}
