package mpi

import "testing"

func TestUnderLauncher(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		want bool
	}{
		{name: "plain process", env: nil, want: false},
		{name: "mpirun", env: map[string]string{"OMPI_COMM_WORLD_SIZE": "2"}, want: true},
		{name: "pmix", env: map[string]string{"PMIX_RANK": "0"}, want: true},
		{name: "pmi", env: map[string]string{"PMI_SIZE": "4"}, want: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, v := range launcherVars {
				t.Setenv(v, "")
			}
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			if got := UnderLauncher(); got != tt.want {
				t.Errorf("UnderLauncher() = %v with %v, want %v", got, tt.env, tt.want)
			}
		})
	}
}
