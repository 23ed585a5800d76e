# apt-sources.sh - sourced by the project's scripts: the host's apt
# sources, from which they take the Debian mirror to use.

# "URI SUITE" pairs of the host's enabled `deb` sources (deb822 and one-line).
host_apt_sources() {
    local f822=() flist=() f
    for f in /etc/apt/sources.list.d/*.sources; do [ -f "$f" ] && f822+=("$f"); done
    [ -f /etc/apt/sources.list ] && flist+=(/etc/apt/sources.list)
    for f in /etc/apt/sources.list.d/*.list; do [ -f "$f" ] && flist+=("$f"); done
    if [ "${#f822[@]}" -gt 0 ]; then
        awk '
            function flush(  n, m, i, j, U, S) {
                if (types ~ /(^|[ \t])deb([ \t]|$)/ && tolower(enabled) !~ /^[ \t]*(no|false)/) {
                    n = split(uris, U, /[ \t]+/); m = split(suites, S, /[ \t]+/)
                    for (i = 1; i <= n; i++) for (j = 1; j <= m; j++)
                        if (U[i] != "" && S[j] != "") print U[i], S[j]
                }
                types = uris = suites = enabled = cur = ""
            }
            FNR == 1 && NR > 1 { flush() }
            /^[ \t]*#/ { next }
            /^[ \t]*$/ { flush(); next }
            /^[A-Za-z0-9-]+:/ {
                cur = tolower(substr($0, 1, index($0, ":") - 1)); val = substr($0, index($0, ":") + 1)
                if (cur == "types") types = val; else if (cur == "uris") uris = val
                else if (cur == "suites") suites = val; else if (cur == "enabled") enabled = val
                next
            }
            /^[ \t]/ { if (cur == "uris") uris = uris " " $0; else if (cur == "suites") suites = suites " " $0 }
            END { flush() }' "${f822[@]}"
    fi
    if [ "${#flist[@]}" -gt 0 ]; then
        awk '$1 == "deb" { i = 2; if ($2 ~ /^\[/) { while (i <= NF && $i !~ /\]$/) i++; i++ }
                           if (i + 1 <= NF) print $i, $(i + 1) }' "${flist[@]}"
    fi
}
