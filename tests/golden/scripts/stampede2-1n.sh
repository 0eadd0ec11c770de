#!/bin/bash
#SBATCH --job-name=hpcscale-stampede2-4r
#SBATCH --nodes=1
#SBATCH --ntasks-per-node=4
#SBATCH --cpus-per-task=12
#SBATCH --time=02:00:00
#SBATCH --partition=skx-normal
#SBATCH --exclusive
#SBATCH --output=hpcscale-%j.out
#SBATCH --error=hpcscale-%j.out
#SBATCH --signal=USR2@120
#
# Rendered by hpcscale 0.1.0 for site stampede2: slurm + ibrun.
# 4 rank(s) on 1 node(s), up to 4 per node; 0 GPU(s), 12 CPU core(s) per rank, walltime 02:00:00.
set -eo pipefail
module load intel/18.0.2
module load impi/18.0.2
export OMP_NUM_THREADS=12
export HPCSCALE_SITE=stampede2
export HPCSCALE_WORLD_SIZE=4
export HPCSCALE_RANKS_PER_NODE=4
export HPCSCALE_SITE_DIGEST=a83f74e8bbacb406570bce858f374474e4b8f19c2b7d1e1a416d20f006c526ee
export HOROVOD_FUSION_THRESHOLD=134217728
export I_MPI_FABRICS=tmi
export I_MPI_TMI_PROVIDER=psm2
export KMP_BLOCKTIME=1
export KMP_AFFINITY=granularity=fine,compact,1,0
ibrun python -u -m hpcscale.train --site stampede2 --engine horovod --data "${SCRATCH}"/hpcscale-data --out study/4r --model jishnet --batch 7 --epochs 10 --target-loss 1.2 --time-limit 7200
