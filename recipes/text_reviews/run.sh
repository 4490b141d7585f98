#!/usr/bin/env bash
# recipes/text_reviews: every run of the recipe on one GPU, N_JOBS (8) runs at a time (transformers do not stack; RUNS=dir
# writes elsewhere; a re-run trains only what is missing). PARTS picks parts: strategies every epochs dp hardt refine
# dp_tuning dp_large_batch (the last reads what dp_tuning chose).
set -euo pipefail
RUNS=${RUNS:-$(dirname "$0")/runs}
PARTS=${PARTS:-strategies every epochs dp hardt refine dp_tuning dp_large_batch}
ON_GPU="hydra/launcher=local_parallel hydra.launcher.n_jobs=${N_JOBS:-8}"
DP=firm.callbacks.dpsgd
for part in $PARTS; do
  case $part in
    strategies)
      aca-run -m experiment=text_reviews $ON_GPU hydra.sweep.dir="$RUNS/planting"                                  # 15 runs
      aca-run -m experiment=text_reviews $ON_GPU collective=feature_only hydra.sweep.dir="$RUNS/feature_only"      # 15
      aca-run -m experiment=text_reviews $ON_GPU collective=erasing hydra.sweep.dir="$RUNS/erasing" ;;             # 15
    every)
      aca-run -m experiment=text_reviews $ON_GPU collective.strategy.signal.every=5,50 hydra.sweep.dir="$RUNS/every" ;;     # 30
    epochs)
      aca-run -m experiment=text_reviews $ON_GPU trainer.max_epochs=1 hydra.sweep.dir="$RUNS/epochs" ;;            # 15
    dp)
      aca-run -m experiment=text_reviews $ON_GPU firm=dpsgd $DP.noise_multiplier=null $DP.target_epsilon=1,8 \
        hydra.sweep.dir="$RUNS/dp" ;;                                                                               # 30
    hardt)  # Hardt et al.'s text setting: the token after every 20th word, 5 epochs
      aca-run -m experiment=text_reviews $ON_GPU collective.strategy.signal.every=20 trainer.max_epochs=5 \
        hydra.sweep.dir="$RUNS/hardt" ;;                                                                            # 15
    refine)  # inside the grid cell that holds alpha* (0.3-1%): every 10th word for 3 epochs, and Hardt's setting
      aca-run -m experiment=text_reviews $ON_GPU collective.alpha=0.005,0.007 hydra.sweep.dir="$RUNS/planting_refined"  # 6
      aca-run -m experiment=text_reviews $ON_GPU collective.alpha=0.005,0.007 collective.strategy.signal.every=20 \
        trainer.max_epochs=5 hydra.sweep.dir="$RUNS/hardt_refined" ;;                                              # 6
    dp_tuning)  # DP fine-tuning settings chosen on clean data: alpha = 0, epsilon = 3, 10% of the training reviews held out
      TUNE="experiment=text_reviews $ON_GPU firm=dpsgd $DP.noise_multiplier=null $DP.target_epsilon=3 collective.alpha=0 seed=0"
      TUNE="$TUNE data.datamodule.val_fraction=0.1"
      aca-run -m $TUNE 'model.trainable=[encoder,pooler,classifier]' data.datamodule.batch_size=512 \
        trainer.max_epochs=10 model.lr=5e-4,1e-3 hydra.sweep.dir="$RUNS/dp_tuning/all_but_embeddings"                # 2
      aca-run -m $TUNE 'model.trainable=[classifier,pooler,LayerNorm]' data.datamodule.batch_size=512 \
        trainer.max_epochs=10 model.lr=1e-3,5e-3 hydra.sweep.dir="$RUNS/dp_tuning/head_layernorm"                     # 2
      python3 -m lightning_aca.runs.selection "$RUNS/dp_tuning" --by model.trainable --by model.lr \
        --by data.datamodule.batch_size --by trainer.max_epochs > "$RUNS/dp_tuning/chosen_settings.txt"
      cat "$RUNS/dp_tuning/chosen_settings.txt" ;;
    dp_large_batch)  # the collective against DP-SGD fine-tuned with the settings dp_tuning chose, on all training reviews
      read -r -a CHOSEN < "$RUNS/dp_tuning/chosen_settings.txt"
      aca-run -m experiment=text_reviews $ON_GPU firm=dpsgd $DP.noise_multiplier=null $DP.target_epsilon=8,3,1 \
        "${CHOSEN[@]}" collective.alpha=0.003,0.01,0.03,0.05,0.1,0.2 seed=0,1 hydra.sweep.dir="$RUNS/dp_large_batch" ;;  # 36
    *) echo "unknown part $part (strategies every epochs dp hardt refine dp_tuning dp_large_batch)" >&2; exit 2 ;;
  esac
done
