package nn

import (
	"errors"
	"fmt"
	"hash"
	"math"

	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// BNStats holds the running statistics of a trainable batch norm, per channel,
// with torch's defaults from NewBNStats: Momentum 0.1, Eps 1e-5.
type BNStats struct {
	Mean, Var []float32 // [C]: running mean and running (unbiased) variance
	Momentum  float32   // running = (1-Momentum)*running + Momentum*batch
	Eps       float32   // added to the variance before the square root
}

// NewBNStats returns statistics for c channels as torch initialises them: mean
// 0, variance 1, momentum 0.1, eps 1e-5.
func NewBNStats(c int) *BNStats {
	st := &BNStats{Mean: make([]float32, c), Var: make([]float32, c), Momentum: 0.1, Eps: 1e-5}
	for i := range st.Var {
		st.Var[i] = 1
	}
	return st
}

// BatchNorm returns (x - mean[c]) / sqrt(var[c] + st.Eps) * gamma[c] + beta[c]
// with torch.nn.BatchNorm2d's semantics. x: [N, C, H, W]; gamma, beta: [C].
// Returns [N, C, H, W]. Gradients flow to x, gamma and beta.
//
// In training mode mean and var are the batch statistics over N, H and W
// (biased variance), and every forward run updates st.Mean and st.Var with
// the momentum (using the unbiased batch variance). Otherwise st.Mean and
// st.Var are used and st is not changed. The op keeps st: do not modify it
// while a graph runs.
func BatchNorm(x, gamma, beta *G.Node, st *BNStats, training bool) (*G.Node, error) {
	s, err := nodeShape4("BatchNorm", "x", x)
	if err != nil {
		return nil, err
	}
	c := s[1]
	if err := nodeVec("BatchNorm", "gamma", gamma, c); err != nil {
		return nil, fmt.Errorf("%w (x is %v)", err, s)
	}
	if err := nodeVec("BatchNorm", "beta", beta, c); err != nil {
		return nil, fmt.Errorf("%w (x is %v)", err, s)
	}
	if st == nil {
		return nil, errors.New("nn: BatchNorm: statistics are nil")
	}
	if len(st.Mean) != c || len(st.Var) != c {
		return nil, fmt.Errorf("nn: BatchNorm: statistics have %d means and %d variances, x %v has %d channels",
			len(st.Mean), len(st.Var), s, c)
	}
	if training && s[0]*s[2]*s[3] < 2 {
		return nil, fmt.Errorf("nn: BatchNorm: training needs more than one value per channel, x is %v", s)
	}
	return G.ApplyOp(&bnOp{shape: s, st: st, training: training}, x, gamma, beta)
}

// bnBatchStats returns the per-channel mean and inverse standard deviation
// 1/sqrt(var+eps) of x [N, C, HW] over N and HW, and the biased variance,
// in float64 (two passes: mean, then squared deviations).
func bnBatchStats(x []float32, n, c, hw int, eps float32) (mean, invStd, variance []float64) {
	mean = make([]float64, c)
	invStd = make([]float64, c)
	variance = make([]float64, c)
	m := float64(n * hw)
	parallelFor(c, func(lo, hi int) {
		for ch := lo; ch < hi; ch++ {
			var s float64
			for i := 0; i < n; i++ {
				s += sumSeg(x[(i*c+ch)*hw : (i*c+ch+1)*hw])
			}
			mu := s / m
			var q float64
			for i := 0; i < n; i++ {
				q += sqDevSeg(x[(i*c+ch)*hw:(i*c+ch+1)*hw], float32(mu))
			}
			mean[ch] = mu
			variance[ch] = q / m
			invStd[ch] = 1 / math.Sqrt(q/m+float64(eps))
		}
	})
	return mean, invStd, variance
}

// bnRunningStats returns the mean and inverse standard deviation from st.
func bnRunningStats(st *BNStats) (mean, invStd []float64) {
	mean = make([]float64, len(st.Mean))
	invStd = make([]float64, len(st.Mean))
	for c := range mean {
		mean[c] = float64(st.Mean[c])
		invStd[c] = 1 / math.Sqrt(float64(st.Var[c])+float64(st.Eps))
	}
	return mean, invStd
}

// sumSeg returns Σ x, accumulated in float32 in four chains over runs of up
// to 64 elements and in float64 across runs (see dotSumSeg).
func sumSeg(x []float32) float64 {
	var s float64
	for len(x) > 0 {
		k := min(len(x), 64)
		xx := x[:k:k]
		var a0, a1, a2, a3 float32
		i := 0
		for ; i+4 <= k; i += 4 {
			v := xx[i : i+4 : i+4]
			a0 += v[0]
			a1 += v[1]
			a2 += v[2]
			a3 += v[3]
		}
		for ; i < k; i++ {
			a0 += xx[i]
		}
		s += float64((a0 + a1) + (a2 + a3))
		x = x[k:]
	}
	return s
}

// sqDevSeg returns Σ (x-mu)², accumulated as sumSeg.
func sqDevSeg(x []float32, mu float32) float64 {
	var s float64
	for len(x) >= 64 {
		xx := x[:64:64]
		var a0, a1, a2, a3 float32
		for i := 0; i < 64; i += 4 {
			v := xx[i : i+4 : i+4]
			d0, d1, d2, d3 := v[0]-mu, v[1]-mu, v[2]-mu, v[3]-mu
			a0 += d0 * d0
			a1 += d1 * d1
			a2 += d2 * d2
			a3 += d3 * d3
		}
		s += float64((a0 + a1) + (a2 + a3))
		x = x[64:]
	}
	for _, v := range x {
		d := float64(v) - float64(mu)
		s += d * d
	}
	return s
}

// bnOp: (x, gamma, beta) -> y.
type bnOp struct {
	HostOp
	shape    tensor.Shape
	st       *BNStats
	training bool
}

func (op *bnOp) Arity() int { return 3 }
func (op *bnOp) Type() hm.Type {
	t, v := tensorT(4), tensorT(1)
	return hm.NewFnType(t, v, v, t)
}
func (op *bnOp) InferShape(...G.DimSizer) (tensor.Shape, error) { return op.shape.Clone(), nil }
func (op *bnOp) Do(vals ...G.Value) (G.Value, error)            { return op.UsePreallocDo(nil, vals...) }
func (op *bnOp) UsePreallocDo(prealloc G.Value, vals ...G.Value) (G.Value, error) {
	n, c, hw := op.shape[0], op.shape[1], op.shape[2]*op.shape[3]
	in, err := inputsF32("BatchNorm", vals, op.shape, tensor.Shape{c}, tensor.Shape{c})
	if err != nil {
		return nil, err
	}
	t, y, err := outputF32("BatchNorm", prealloc, op.shape)
	if err != nil {
		return nil, err
	}
	x, gamma, beta := in[0], in[1], in[2]
	var mean, invStd, variance []float64
	if op.training {
		mean, invStd, variance = bnBatchStats(x, n, c, hw, op.st.Eps)
	} else {
		mean, invStd = bnRunningStats(op.st)
	}
	scale := make([]float32, c)
	shift := make([]float32, c)
	for ch := range scale {
		s := float64(gamma[ch]) * invStd[ch]
		scale[ch] = float32(s)
		shift[ch] = float32(float64(beta[ch]) - mean[ch]*s)
	}
	affineKernel(y, x, nil, scale, shift, hw, false)
	if op.training {
		m := float64(n * hw)
		mom := float64(op.st.Momentum)
		for ch := range mean {
			op.st.Mean[ch] = float32((1-mom)*float64(op.st.Mean[ch]) + mom*mean[ch])
			op.st.Var[ch] = float32((1-mom)*float64(op.st.Var[ch]) + mom*variance[ch]*m/(m-1))
		}
	}
	return t, nil
}
func (op *bnOp) String() string {
	return fmt.Sprintf("nn.BatchNorm%v(training=%v,stats=%p)", op.shape, op.training, op.st)
}
func (op *bnOp) WriteHash(h hash.Hash) { writeHash(h, op.String()) }
func (op *bnOp) Hashcode() uint32      { return hashOf(op.String()) }
func (op *bnOp) DiffWRT(n int) []bool  { return []bool{true, true, true} }
func (op *bnOp) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	if len(inputs) != 3 {
		return nil, fmt.Errorf("nn: BatchNorm gradient: got %d inputs, want 3", len(inputs))
	}
	x, gamma := inputs[0], inputs[1]
	dx, err := G.ApplyOp(&bnGradOp{bn: *op, params: false}, x, gamma, grad)
	if err != nil {
		return nil, fmt.Errorf("nn: BatchNorm gradient w.r.t. x: %w", err)
	}
	p, err := G.ApplyOp(&bnGradOp{bn: *op, params: true}, x, gamma, grad)
	if err != nil {
		return nil, fmt.Errorf("nn: BatchNorm gradient w.r.t. gamma and beta: %w", err)
	}
	out := G.Nodes{dx, nil, nil}
	for i := 0; i < 2; i++ {
		if out[1+i], err = G.ApplyOp(&rowOp{rows: 2, cols: op.shape[1], row: i}, p); err != nil {
			return nil, fmt.Errorf("nn: BatchNorm gradient w.r.t. gamma and beta: %w", err)
		}
	}
	return out, nil
}

// bnGradOp: (x, gamma, gy) -> dx [N, C, H, W], or with params set -> [2, C]
// holding dgamma and dbeta. The statistics are recomputed from x in training
// mode (the forward op keeps no state besides the running statistics).
type bnGradOp struct {
	HostOp
	bn     bnOp
	params bool
}

func (op *bnGradOp) Arity() int { return 3 }
func (op *bnGradOp) Type() hm.Type {
	t, v := tensorT(4), tensorT(1)
	if op.params {
		return hm.NewFnType(t, v, t, tensorT(2))
	}
	return hm.NewFnType(t, v, t, t)
}
func (op *bnGradOp) outShape() tensor.Shape {
	if op.params {
		return tensor.Shape{2, op.bn.shape[1]}
	}
	return op.bn.shape.Clone()
}
func (op *bnGradOp) InferShape(...G.DimSizer) (tensor.Shape, error) { return op.outShape(), nil }
func (op *bnGradOp) Do(vals ...G.Value) (G.Value, error)            { return op.UsePreallocDo(nil, vals...) }
func (op *bnGradOp) UsePreallocDo(prealloc G.Value, vals ...G.Value) (G.Value, error) {
	s := op.bn.shape
	n, c, hw := s[0], s[1], s[2]*s[3]
	in, err := inputsF32("BatchNorm gradient", vals, s, tensor.Shape{c}, s)
	if err != nil {
		return nil, err
	}
	t, out, err := outputF32("BatchNorm gradient", prealloc, op.outShape())
	if err != nil {
		return nil, err
	}
	x, gamma, gy := in[0], in[1], in[2]
	var mean, invStd []float64
	if op.bn.training {
		mean, invStd, _ = bnBatchStats(x, n, c, hw, op.bn.st.Eps)
	} else {
		mean, invStd = bnRunningStats(op.bn.st)
	}
	// Σ gy·x and Σ gy per channel.
	sums := make([]float32, 2*c)
	affineGradParamsKernel(sums, x, nil, gy, c, hw)
	sg := make([]float64, c)   // dbeta = Σ gy
	sgxh := make([]float64, c) // dgamma = Σ gy·xhat = invStd·(Σ gy·x - mean·Σ gy)
	for ch := range sg {
		sg[ch] = float64(sums[c+ch])
		sgxh[ch] = invStd[ch] * (float64(sums[ch]) - mean[ch]*sg[ch])
	}
	if op.params {
		for ch := range sg {
			out[ch] = float32(sgxh[ch])
			out[c+ch] = float32(sg[ch])
		}
		return t, nil
	}
	k1 := make([]float32, c)
	if !op.bn.training {
		// dx = gy·gamma·invStd: the statistics are constants.
		for ch := range k1 {
			k1[ch] = float32(float64(gamma[ch]) * invStd[ch])
		}
		affineGradXKernel(out, nil, gy, k1, hw)
		return t, nil
	}
	// dx = gamma·invStd·(gy - Σgy/M - xhat·Σ(gy·xhat)/M) = k1·gy + k2·x + k3.
	k2 := make([]float32, c)
	k3 := make([]float32, c)
	m := float64(n * hw)
	for ch := range k1 {
		a := float64(gamma[ch]) * invStd[ch]
		b := a * invStd[ch] * sgxh[ch] / m
		k1[ch] = float32(a)
		k2[ch] = float32(-b)
		k3[ch] = float32(-a*sg[ch]/m + mean[ch]*b)
	}
	parallelParts(len(x), parts(len(x)), func(_, lo, hi int) {
		for lo < hi {
			p := lo / hw
			end := min(hi, (p+1)*hw)
			ch := p % c
			bnGradSeg(out[lo:end], gy[lo:end], x[lo:end], k1[ch], k2[ch], k3[ch])
			lo = end
		}
	})
	return t, nil
}

func bnGradSeg(dx, gy, x []float32, k1, k2, k3 float32) {
	n := len(gy)
	dx, x = dx[:n], x[:n]
	i := 0
	for ; i+4 <= n; i += 4 {
		gg, xx, dd := gy[i:i+4:i+4], x[i:i+4:i+4], dx[i:i+4:i+4]
		dd[0] = k1*gg[0] + k2*xx[0] + k3
		dd[1] = k1*gg[1] + k2*xx[1] + k3
		dd[2] = k1*gg[2] + k2*xx[2] + k3
		dd[3] = k1*gg[3] + k2*xx[3] + k3
	}
	for ; i < n; i++ {
		dx[i] = k1*gy[i] + k2*x[i] + k3
	}
}

func (op *bnGradOp) String() string {
	return fmt.Sprintf("nn.BatchNormGrad%v(training=%v,params=%v,stats=%p)", op.bn.shape, op.bn.training, op.params, op.bn.st)
}
func (op *bnGradOp) WriteHash(h hash.Hash) { writeHash(h, op.String()) }
func (op *bnGradOp) Hashcode() uint32      { return hashOf(op.String()) }
func (op *bnGradOp) DiffWRT(n int) []bool  { return make([]bool, n) }
func (op *bnGradOp) SymDiff(G.Nodes, *G.Node, *G.Node) (G.Nodes, error) {
	return nil, errors.New("nn: BatchNorm gradient: second derivative not implemented")
}
