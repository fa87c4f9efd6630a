#!/usr/bin/env bash
# bench/fleet-summary.sh RESULTS: the Markdown summary of a bench/fleet.sh run (fleet.sh prints it
# at the end; run it again on a results dir to re-render). Sizes in MB (10^6 bytes).
set -euo pipefail
RES=${1:?usage: bench/fleet-summary.sh RESULTS_DIR}
val() { awk -F'\t' -v k="$2" '$1==k {print $2}' "$RES/$1"; }

echo "### fleet: $(val run.tsv builds) builds, $(tail -n +2 "$RES/builds.tsv" | cut -f2 | sort -u | wc -l) programs, $(tail -n +2 "$RES/builds.tsv" | cut -f4 | sort -u | wc -l) builders"
echo
echo "$(val run.tsv date), commit $(val run.tsv commit), $(val run.tsv go), $(val run.tsv cores) cores," \
  "load at the end $(val run.tsv load), run time $(awk '{printf "%.1f", $1/60}' "$RES/seconds") min" \
  "(builds only); push --restore-keys: $(val run.tsv push_restore_keys)."
echo
echo "| # | build | on | melcache restored | down MB | up MB | pull s | build s | push s | push delta of | compiles run / reused | actions/cache restored | down MB | up MB | restore s | build s | save s | compiles run / reused | cold s (compiles) |"
echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
awk -F'\t' -v OFS=' | ' '
  function mb(b) { return sprintf("%.2f", b / 1e6) }
  NR == 1 { for (i = 1; i <= NF; i++) c[$i] = i; next }
  {
    cold = ($c["cold_s"] == "-" || $c["cold_s"] == "") ? "-" : $c["cold_s"] " (" $c["cold_run"] ")"
    print "| " $c["step"], $c["program"] "@" $c["version"], $c["builder"],
      $c["mc_restored"], mb($c["mc_down"]), mb($c["mc_up"]), $c["mc_pull_s"], $c["mc_build_s"], $c["mc_push_s"], ("mc_base" in c ? $c["mc_base"] : "?"), $c["mc_run"] " / " $c["mc_reused"],
      $c["ac_restored"], mb($c["ac_down"]), mb($c["ac_up"]), $c["ac_restore_s"], $c["ac_build_s"], $c["ac_save_s"], $c["ac_run"] " / " $c["ac_reused"],
      cold " |"
  }' "$RES/builds.tsv"
echo
awk -F'\t' -v rall="$(val storage.tsv registry_all)" -v rgc="$(val storage.tsv registry_gc)" \
  -v mall="$(val storage.tsv model_all)" -v mnew="$(val storage.tsv model_newest)" '
  function mb(b) { return sprintf("%.1f MB", b / 1e6) }
  function ratio(a, b) { return b > 0 ? sprintf("%.3f", a / b) : "-" }
  function verdict(a, b, max) { return b == 0 ? "-" : a / b <= max ? "**met**" : "**missed**" }
  NR == 1 { for (i = 1; i <= NF; i++) c[$i] = i; next }
  {
    mu += $c["mc_up"]; md += $c["mc_down"]; au += $c["ac_up"]; ad += $c["ac_down"]
    mt += $c["mc_pull_s"] + $c["mc_build_s"] + $c["mc_push_s"]; at += $c["ac_restore_s"] + $c["ac_build_s"] + $c["ac_save_s"]
    mb_ += $c["mc_build_s"]; ab += $c["ac_build_s"]
    mrun += $c["mc_run"]; mre += $c["mc_reused"]; arun += $c["ac_run"]; are += $c["ac_reused"]
    if ($c["cold_s"] != "-" && $c["cold_s"] != "") { cs += $c["cold_s"]; cr += $c["cold_run"]; cn++ }
  }
  END {
    print "| total | melcache | actions/cache model | melcache / model | target |"
    print "|---|---|---|---|---|"
    print "| uploaded | " mb(mu) " | " mb(au) " | " ratio(mu, au) " | ≤ 0.2: " verdict(mu, au, 0.2) " |"
    print "| downloaded | " mb(md) " | " mb(ad) " | " ratio(md, ad) " | ≤ 0.5: " verdict(md, ad, 0.5) " |"
    print "| restore + build + save, s | " sprintf("%.1f", mt) " | " sprintf("%.1f", at) " | " ratio(mt, at) " | |"
    cold = cn ? "cold: " sprintf("%.1f", cs) " s for " cn " program versions" : "no cold builds"
    print "| warm builds, s (" cold ") | " sprintf("%.1f", mb_) " | " sprintf("%.1f", ab) " | " ratio(mb_, ab) " | |"
    print "| compile actions run / reused (" (cn ? "cold: " cr " run" : "no cold builds") ") | " mrun " / " mre " | " arun " / " are " | | |"
    print "| storage, every key kept | " mb(rall) " (registry) | " mb(mall) " (archives) | " ratio(rall, mall) " | |"
    print "| storage after `melcache gc --keep-last 1` + registry garbage-collect / newest archive per program | " mb(rgc) " | " mb(mnew) " | " ratio(rgc, mnew) " | |"
  }' "$RES/builds.tsv"
echo
echo "raw: $RES/builds.tsv, storage.tsv, run.tsv"
