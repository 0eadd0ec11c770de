#!/bin/bash
#SBATCH --job-name=hpcscale-stampede2-4r
#SBATCH --nodes=1
#SBATCH --ntasks-per-node=4
#SBATCH --cpus-per-task=12
#SBATCH --time=02:00:00
#SBATCH --partition=skx-normal
#SBATCH --exclusive
#SBATCH --output=/scratch/study/jobs/4r/submitit/%j_0_log.out
#SBATCH --error=/scratch/study/jobs/4r/submitit/%j_0_log.err
#SBATCH --signal=USR2@120
#
# Rendered by hpcscale 0.1.0 for site stampede2: slurm + ibrun.
# 4 rank(s) on 1 node(s), up to 4 per node; 0 GPU(s), 12 CPU core(s) per rank, walltime 02:00:00.
# Every rank runs the training core (from submitit's pickle) with: --site stampede2 --engine horovod --data '${SCRATCH}/hpcscale-data' --out /scratch/study/jobs/4r --model 3dgan --batch 8 --epochs 25 --target-loss 0.1 --max-requeues 3 --time-limit 7200 --inter-threads 2 --study 0123abcd --job 4r
set -eo pipefail
module load intel/18.0.2
module load impi/18.0.2
export OMP_NUM_THREADS=11
export HPCSCALE_SITE=stampede2
export HPCSCALE_WORLD_SIZE=4
export HPCSCALE_RANKS_PER_NODE=4
export HPCSCALE_SITE_DIGEST=12fc3a078108049f6966f34290116ce08f8fdf829feb58f8e453432d76b018c6
export HOROVOD_FUSION_THRESHOLD=134217728
export I_MPI_FABRICS=tmi
export I_MPI_TMI_PROVIDER=psm2
export KMP_BLOCKTIME=1
export KMP_AFFINITY=granularity=fine,compact,1,0
export SUBMITIT_EXECUTOR=slurm-mpi
ibrun /opt/venv/bin/python -u -m submitit.core._submit /scratch/study/jobs/4r/submitit
