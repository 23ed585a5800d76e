#!/usr/bin/env bash
# test_cli.sh MASKDCPT SAMPLE.png - the command-line tool end to end:
# help for every command, restore in every format, bit depth and alpha kept,
# strength 0 exact, clear errors with nothing left behind, degrade's crop and
# exact-sigma noise, compare's PSNR / SSIM and classify's CSV.
set -u
exe=$1 sample=$2
tmp=$(mktemp -d "${MASKDCPT_TEST_TMP:-/tmp}/cli.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
passed=0 failed=0
check() { # description command...
  local what=$1; shift
  if "$@" >"$tmp/out.log" 2>&1; then passed=$((passed + 1))
  else failed=$((failed + 1)); echo "FAIL: $what"; sed 's/^/  /' "$tmp/out.log"; fi
}
fails() { # description expected-status command... : must exit with that status
  local what=$1 want=$2; shift 2
  "$@" >"$tmp/out.log" 2>&1; local got=$?
  if [ "$got" = "$want" ]; then passed=$((passed + 1))
  else failed=$((failed + 1)); echo "FAIL: $what (status $got, wanted $want)"; sed 's/^/  /' "$tmp/out.log"; fi
}
png_depth() { od -An -tu1 -j24 -N1 "$1" | tr -d ' '; }
png_colour() { od -An -tu1 -j25 -N1 "$1" | tr -d ' '; }

for cmd in restore classify info bench init degrade contact-sheet compare; do
  check "$cmd --help" "$exe" "$cmd" --help
done
check "--help" "$exe" --help
fails "no command" 2 "$exe"
fails "unknown command" 2 "$exe" frobnicate

w=$tmp/w.safetensors
check "init" "$exe" init "$w" --width 8 --enc 1,1 --dec 1,1 --middle 1 --window 64 --seed 3 --residual-scale 0.1
check "info" "$exe" info "$w"
"$exe" info "$w" | grep -q "random-init" && passed=$((passed + 1)) || { failed=$((failed + 1)); echo "FAIL: info shows provenance"; }

# the shipped networks by name (found in the source tree before installation)
"$exe" info fast | grep -q "width 16," && passed=$((passed + 1)) || { failed=$((failed + 1)); echo "FAIL: info fast"; }
"$exe" info quality | grep -q "width 32," && passed=$((passed + 1)) || { failed=$((failed + 1)); echo "FAIL: info quality"; }
"$exe" info | grep -q "width 16," && passed=$((passed + 1)) || { failed=$((failed + 1)); echo "FAIL: info default is fast"; }
(exe_abs=$(realpath "$exe") && cd "$tmp" && cp "$w" quality && "$exe_abs" info quality | grep -q "random-init") \
  && passed=$((passed + 1)) || { failed=$((failed + 1)); echo "FAIL: a file named quality wins"; }
rm -f "$tmp/quality"

check "degrade noise" "$exe" degrade "$sample" "$tmp/noisy.png" --type noise --level 0.5 --seed 1
check "restore auto png" "$exe" restore "$tmp/noisy.png" "$tmp/r.png" --weights "$w" --quiet
check "restore forced jpg" "$exe" restore "$tmp/noisy.png" "$tmp/r.jpg" --weights "$w" --type noise --quiet
check "restore webp" "$exe" restore "$tmp/noisy.png" "$tmp/r.webp" --weights "$w" --strength 0.5 --tile 160 --quiet
check "restore from jpeg" "$exe" restore "$tmp/r.jpg" "$tmp/r2.png" --weights "$w" --quiet
check "restore from webp" "$exe" restore "$tmp/r.webp" "$tmp/r3.png" --weights "$w" --quiet
check "classify" "$exe" classify "$tmp/noisy.png" --weights "$w"
"$exe" restore "$tmp/noisy.png" "$tmp/auto.png" --weights "$w" 2>/dev/null | grep -q "Detected degradation" \
  && passed=$((passed + 1)) || { failed=$((failed + 1)); echo "FAIL: restore reports the detection"; }

# the shipped fast network restores noise in two passes ('passes') and says so
"$exe" restore "$tmp/noisy.png" "$tmp/f.png" -w fast --type noise 2>/dev/null | grep -q "ran 2 times" \
  && passed=$((passed + 1)) || { failed=$((failed + 1)); echo "FAIL: restore reports two passes"; }
"$exe" restore "$tmp/noisy.png" "$tmp/f.png" -w fast --type jpeg 2>/dev/null | grep -q "ran" \
  && { failed=$((failed + 1)); echo "FAIL: one pass reported as several"; } || passed=$((passed + 1))

# 16-bit stays 16-bit
check "restore to 16-bit" "$exe" restore "$tmp/noisy.png" "$tmp/r16.png" --weights "$w" --bit-depth 16 --quiet
check "restore 16-bit input" "$exe" restore "$tmp/r16.png" "$tmp/r16b.png" --weights "$w" --quiet
[ "$(png_depth "$tmp/r16b.png")" = 16 ] && passed=$((passed + 1)) || { failed=$((failed + 1)); echo "FAIL: 16-bit PNG stays 16-bit"; }
[ "$(png_depth "$tmp/r.png")" = 8 ] && passed=$((passed + 1)) || { failed=$((failed + 1)); echo "FAIL: 8-bit PNG stays 8-bit"; }

# strength 0 gives back the input's pixels (8-bit PNG round trip is exact)
check "strength 0" "$exe" restore "$tmp/noisy.png" "$tmp/s0.png" --weights "$w" --strength 0 --quiet
check "strength 0 again" "$exe" restore "$tmp/s0.png" "$tmp/s0b.png" --weights "$w" --strength 0 --quiet
cmp -s "$tmp/s0.png" "$tmp/s0b.png" && passed=$((passed + 1)) || { failed=$((failed + 1)); echo "FAIL: strength 0 is the identity"; }

# compare: identical -> inf / 1; Gaussian sigma 10 -> about 20 log10(255/10)
# = 28.1 dB (a little more, since clipping at 0 and 1 removes some noise)
csv_field() { awk -F, -v f="$2" -v c="$3" '$1 == f { print $c }' "$1"; }
check "degrade --sigma" "$exe" degrade "$sample" "$tmp/n10.png" --type noise --sigma 10 --seed 1
check "compare --csv" "$exe" compare "$sample" "$sample" "$tmp/n10.png" --csv
"$exe" compare --csv "$sample" "$sample" "$tmp/n10.png" > "$tmp/cmp.csv" 2>&1
[ "$(head -1 "$tmp/cmp.csv")" = "file,psnr,ssim" ] && passed=$((passed + 1)) || { failed=$((failed + 1)); echo "FAIL: compare CSV header"; }
[ "$(csv_field "$tmp/cmp.csv" "$sample" 2)" = inf ] && [ "$(csv_field "$tmp/cmp.csv" "$sample" 3)" = 1.000000 ] \
  && passed=$((passed + 1)) || { failed=$((failed + 1)); echo "FAIL: identical images: PSNR inf, SSIM 1"; cat "$tmp/cmp.csv"; }
awk -v p="$(csv_field "$tmp/cmp.csv" "$tmp/n10.png" 2)" 'BEGIN { exit !(p > 27.9 && p < 28.8) }' \
  && passed=$((passed + 1)) || { failed=$((failed + 1)); echo "FAIL: sigma 10 noise: PSNR near 28.1 dB"; cat "$tmp/cmp.csv"; }
check "degrade --crop" "$exe" degrade "$sample" "$tmp/crop.png" --type clean --crop 64x48+10+20
[ "$(od -An -tu1 -j16 -N8 "$tmp/crop.png" | tr -s ' ')" = " 0 0 0 64 0 0 0 48" ] \
  && passed=$((passed + 1)) || { failed=$((failed + 1)); echo "FAIL: --crop gives 64x48"; }
fails "compare size mismatch" 1 "$exe" compare "$sample" "$tmp/crop.png"
grep -q "sizes must match" "$tmp/out.log" && passed=$((passed + 1)) || { failed=$((failed + 1)); echo "FAIL: size mismatch says so"; }
fails "compare one file" 2 "$exe" compare "$sample"
fails "crop outside" 1 "$exe" degrade "$sample" "$tmp/t.png" --type clean --crop 64x48+590+0
fails "--sigma without noise" 2 "$exe" degrade "$sample" "$tmp/t.png" --type jpeg --sigma 5
"$exe" classify --csv "$tmp/n10.png" "$tmp/crop.png" --weights "$w" > "$tmp/cls.csv" 2>/dev/null
[ "$(wc -l < "$tmp/cls.csv")" = 3 ] && head -1 "$tmp/cls.csv" | grep -q '^file,predicted,clean,noise,' \
  && passed=$((passed + 1)) || { failed=$((failed + 1)); echo "FAIL: classify --csv"; cat "$tmp/cls.csv"; }

# errors: clear message, right status, no output file left
head -c 3000 "$sample" > "$tmp/truncated.png"
fails "truncated input" 1 "$exe" restore "$tmp/truncated.png" "$tmp/t.png" --weights "$w"
[ ! -e "$tmp/t.png" ] && passed=$((passed + 1)) || { failed=$((failed + 1)); echo "FAIL: no output after a truncated input"; }
fails "missing input" 1 "$exe" restore "$tmp/nope.png" "$tmp/t.png" --weights "$w"
fails "missing weights" 1 "$exe" restore "$tmp/noisy.png" "$tmp/t.png" --weights "$tmp/nope.safetensors"
head -c 500 "$w" > "$tmp/bad.safetensors"
fails "truncated weights" 1 "$exe" restore "$tmp/noisy.png" "$tmp/t.png" --weights "$tmp/bad.safetensors"
grep -q "bad.safetensors" "$tmp/out.log" && passed=$((passed + 1)) || { failed=$((failed + 1)); echo "FAIL: weights error names the file"; }
fails "unknown type" 2 "$exe" restore "$tmp/noisy.png" "$tmp/t.png" --weights "$w" --type sunburn
fails "bad strength" 2 "$exe" restore "$tmp/noisy.png" "$tmp/t.png" --weights "$w" --strength 2
fails "bad output format" 2 "$exe" restore "$tmp/noisy.png" "$tmp/t.tiff" --weights "$w"
fails "cuda unavailable" 1 "$exe" restore "$tmp/noisy.png" "$tmp/t.png" --weights "$w" --device cuda
fails "unwritable output" 1 "$exe" restore "$tmp/noisy.png" "$tmp/no/such/dir/t.png" --weights "$w"
[ ! -e "$tmp/t.png" ] && passed=$((passed + 1)) || { failed=$((failed + 1)); echo "FAIL: no output after errors"; }
leftovers=$(find "$tmp" -name '*.tmp.*' | wc -l)
[ "$leftovers" = 0 ] && passed=$((passed + 1)) || { failed=$((failed + 1)); echo "FAIL: temporary files left: $leftovers"; }

echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
