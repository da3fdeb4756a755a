package gradtest

import (
	"fmt"
	"math"
	"strings"
	"testing"

	G "gorgonia.org/gorgonia"
)

// failTB records Errorf and Fatal(f) calls; Fatal stops the check under
// test with a panic that check recovers.
type failTB struct {
	testing.TB
	errs []string
}

func (f *failTB) Helper() {}
func (f *failTB) Errorf(format string, args ...any) {
	f.errs = append(f.errs, fmt.Sprintf(format, args...))
}
func (f *failTB) Fatalf(format string, args ...any) {
	f.errs = append(f.errs, fmt.Sprintf(format, args...))
	panic(f)
}
func (f *failTB) Fatal(args ...any) {
	f.errs = append(f.errs, fmt.Sprint(args...))
	panic(f)
}

func check(fn func(tb testing.TB)) []string {
	f := &failTB{}
	func() {
		defer func() {
			if r := recover(); r != nil && r != f {
				panic(r)
			}
		}()
		fn(f)
	}()
	return f.errs
}

// TestRun: Σx² and Σx of x = [1, 2, -3] give 14 and 0, and the gradient of
// their sum is 2x+1.
func TestRun(t *testing.T) {
	g := NewGraph([][]int{{3}}, [][]float32{{1, 2, -3}})
	sq := G.Must(G.Sum(G.Must(G.Square(g.Inputs[0]))))
	s := G.Must(G.Sum(g.Inputs[0]))
	vals, grads := g.Run(t, sq, s)
	if vals[0] != 14 || vals[1] != 0 {
		t.Errorf("values %v, want [14 0]", vals)
	}
	want := []float32{3, 5, -5}
	for i, v := range grads[0] {
		if math.Abs(float64(v-want[i])) > 1e-6 {
			t.Errorf("gradient %v, want %v", grads[0], want)
			break
		}
	}
}

// TestCheckFiniteDifference: the check passes a smooth loss, and fails one
// whose gradients are all zero and one whose build fails.
func TestCheckFiniteDifference(t *testing.T) {
	shapes, datas := [][]int{{2, 3}}, [][]float32{{0.5, -1, 2, 0.25, 1.5, -0.75}}
	for _, tc := range []struct {
		name  string
		build func(in []*G.Node) ([]*G.Node, error)
		want  string
	}{
		{"sum of cubes", func(in []*G.Node) ([]*G.Node, error) {
			c, err := G.Cube(in[0])
			if err != nil {
				return nil, err
			}
			s, err := G.Sum(c)
			return []*G.Node{s}, err
		}, ""},
		{"zero gradient", func(in []*G.Node) ([]*G.Node, error) {
			z, err := G.Mul(in[0], G.NewConstant(float32(0)))
			if err != nil {
				return nil, err
			}
			s, err := G.Sum(z)
			return []*G.Node{s}, err
		}, "all gradients are zero"},
		{"build error", func(in []*G.Node) ([]*G.Node, error) {
			return nil, fmt.Errorf("no loss")
		}, "no loss"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			errs := check(func(tb testing.TB) { CheckFiniteDifference(tb, shapes, datas, tc.build) })
			if tc.want == "" {
				if len(errs) > 0 {
					t.Errorf("errors %q, want none", errs)
				}
				return
			}
			if len(errs) != 1 || !strings.Contains(errs[0], tc.want) {
				t.Errorf("errors %q, want [%q]", errs, tc.want)
			}
		})
	}
}
