#!/usr/bin/env bash
# layout.sh — the dependency rule of docs/architecture.md: a stage includes, of another
# folder, only the public header (FOLDER/FOLDER.h) of a stage before it; nothing points
# back up the pipeline.
cd "$(dirname "$0")/../.."
. tests/lib.sh

# each stage and the stages it may include
declare -A may=(
    [base]=""
    [formats]="base"
    [ir]="base"
    [frontend]="base ir"
    [step]="base ir frontend"
    [codegen]="base ir"
    [runtime]="base ir codegen"
    [trainer]="base formats ir frontend step codegen runtime"
    [study]="base"
    [cli]="base formats ir frontend step codegen runtime trainer study"
    [emu]=""                                     # a library of its own, loaded at run time
)
stages="base formats ir frontend step codegen runtime trainer study cli emu"   # pipeline order, then the emulator
for stage in $stages; do
    bad=()
    for f in "$stage"/*.[chly]; do
        [ -f "$f" ] || continue
        while read -r inc; do
            dir=${inc%%/*}
            [ "$dir" = "$inc" ] && continue          # generated headers (parser.h, lexer.h)
            [ "$dir" = "$stage" ] && continue        # its own headers, public or private
            if [[ " ${may[$stage]} " != *" $dir "* ]]; then bad+=("$f: $inc (a stage $stage may not include)")
            elif [ "$inc" != "$dir/$dir.h" ]; then bad+=("$f: $inc (a private header of $dir)"); fi
        done < <(sed -n 's/^#include "\([^"]*\)".*/\1/p' "$f")
    done
    if [ ${#bad[@]} -eq 0 ]; then pass "$stage/ includes only public headers of stages before it"
    else fail "$stage/ includes only public headers of stages before it" "${bad[@]}"; fi
done

# every stage has its public header, and no source file sits at the top level
missing=()
for stage in $stages; do [ -f "$stage/$stage.h" ] || missing+=("$stage/$stage.h"); done
[ ${#missing[@]} -eq 0 ] && pass "every stage has its public header" || fail "every stage has its public header" "${missing[@]}"
top=$(ls ./*.c ./*.h 2>/dev/null)
[ -z "$top" ] && pass "no C source at the top level" || fail "no C source at the top level" "$top"

# the stages after the front end take every schedule by the name the model gives it: none
# spells a schedule of the study's models (lr_mul, bare, is also the language's per-parameter
# multiplier, `opt GROUP(lr_mul = y)`, which step/ and cli/ read)
hits=$(grep -rnE '\<window_(long|short)\>|"lr_mul"' runtime codegen trainer step cli)
[ -z "$hits" ] && pass "runtime/ codegen/ trainer/ step/ cli/ spell no schedule of a model" ||
    fail "runtime/ codegen/ trainer/ step/ cli/ spell no schedule of a model" "$hits"
# nor an input's name: the trainer finds the token-stream inputs through the front end
hits=$(grep -rnE '"(tokens|targets)"' runtime codegen trainer step cli)
[ -z "$hits" ] && pass "runtime/ codegen/ trainer/ step/ cli/ name no input of a model" ||
    fail "runtime/ codegen/ trainer/ step/ cli/ name no input of a model" "$hits"
