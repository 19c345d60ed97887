#!/usr/bin/env bash
# The stack_three reward-model experiment of the README ("Measured", reward model), end to end on
# a 2-core CPU: every artifact it trains and tests on, with the seeds that keep the test episodes
# held out (different initial states from every training episode), then fit-reward-model.
#
#   bash examples/reward_model_stack_three.sh [RUNS_DIR]      # default runs/rm_st3, about an hour
#
# Steps run one at a time (two collection workers each): on 2 cores, two CPU jobs at once make
# every timing wrong. Re-running resumes: complete artifacts with an unchanged config are reused.
set -euo pipefail
RUNS=${1:-runs/rm_st3}
export MUJOCO_GL=${MUJOCO_GL:-osmesa} PYOPENGL_PLATFORM=${PYOPENGL_PLATFORM:-osmesa}
W="wmpo --quiet"
C="collect --task stack_three --workers 2 --image-size 64"

# Training: 200 expert demos, a policy fit on them, 160 of its greedy episodes (a success would be
# held 10 steps, as imagined rollouts show it) and 100 sampled ones (temperature 1.0), and
# noisy-expert episodes at two noise levels (0.3: mostly failures; 0.15: partial stacks and
# noisy successes).
$W --run-dir "$RUNS/st3" --recipe tiny $C --episodes 200
$W --run-dir "$RUNS/st3" --recipe tiny fit-policy --task stack_three
$W --run-dir "$RUNS/st3e" --seed 5000 --set hold_steps=10 eval --policy "$RUNS/st3/policy" \
    --task stack_three --episodes 60 --workers 2
$W --run-dir "$RUNS/st3f" --seed 5500 --set hold_steps=10 eval --policy "$RUNS/st3/policy" \
    --task stack_three --episodes 100 --workers 2
$W --run-dir "$RUNS/st3r" --seed 6000 collect --task stack_three --source policy --policy "$RUNS/st3/policy" \
    --temperature 1.0 --episodes 100 --workers 2
$W --run-dir "$RUNS/st3w" --seed 11000 $C --expert-noise 0.3 --episodes 120
$W --run-dir "$RUNS/st3q" --seed 12000 $C --expert-noise 0.15 --episodes 60

# Held-out test: 24 clean demos, 40 noisy (0.3) and 100 greedy policy episodes, all on seeds no
# training artifact uses.
$W --run-dir "$RUNS/st3p" --seed 7000 --set hold_steps=10 eval --policy "$RUNS/st3/policy" \
    --task stack_three --episodes 100 --workers 2
$W --run-dir "$RUNS/st3s" --seed 8000 $C --episodes 24
$W --run-dir "$RUNS/st3t" --seed 9000 $C --expert-noise 0.3 --episodes 40

eval_dir() { find "$1/eval" -mindepth 2 -maxdepth 2 -name default -type d | head -n 1; }
$W --run-dir "$RUNS/rm" --recipe tiny fit-reward-model --task stack_three \
    --episodes "$RUNS/st3/demos" --episodes "$(eval_dir "$RUNS/st3e")" --episodes "$(eval_dir "$RUNS/st3f")" \
    --episodes "$RUNS/st3r/rollouts" \
    --episodes "$RUNS/st3w/demos" --episodes "$RUNS/st3q/demos" \
    --test "$RUNS/st3s/demos" --test "$RUNS/st3t/demos" --test "$(eval_dir "$RUNS/st3p")"
