# golden_sets.sh — the golden sets of tests/golden as the shell tests use them (sourced):
# each set's config as --set overrides of models/gpt2m.gptc, its single-step windows
# as --schedule pins and its loss (tests/golden/README.md; golden.json holds the same).
declare -A cfg sched loss
cfg[tiny_x02]="vocab=200 eot=199 dim=64 heads=2 head_dim=32 n_emb=3 block=16 seq_len=256"
cfg[small_x00]="vocab=96 eot=95 dim=32 heads=2 head_dim=16 n_emb=1 block=8 seq_len=128"
cfg[small_x04]="vocab=80 eot=0 dim=32 heads=4 head_dim=8 n_emb=5 block=4 seq_len=64"
sched[tiny_x02]=window_long=3,window_short=1;  loss[tiny_x02]=8.162777622208608
sched[small_x00]=window_long=5,window_short=2; loss[small_x00]=7.313181168263524
sched[small_x04]=window_long=7,window_short=3; loss[small_x04]=7.156966290047297
golden_sets=(tiny_x02 small_x00 small_x04)
