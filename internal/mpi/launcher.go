package mpi

import "os"

// launcherVars are environment variables set by MPI launchers: Open MPI's
// mpirun, and PMI/PMIx launchers (srun, hydra).
var launcherVars = []string{"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_SIZE", "PMI_RANK"}

// UnderLauncher reports whether the process was started by an MPI
// launcher (mpirun, srun), judged by its environment variables.
func UnderLauncher() bool {
	for _, v := range launcherVars {
		if os.Getenv(v) != "" {
			return true
		}
	}
	return false
}
