package nn

// HostOp supplies the three gorgonia.Op methods that every op of this
// project answers alike: Do returns a value of its own (or fills the buffer
// UsePreallocDo is given) rather than a pointer into an input, the op is not
// a CUDA extern, and it never overwrites an input. Embed it in an op's
// struct.
type HostOp struct{}

// ReturnsPtr reports false: results are values of their own.
func (HostOp) ReturnsPtr() bool { return false }

// CallsExtern reports false: the op runs on the host.
func (HostOp) CallsExtern() bool { return false }

// OverwritesInput reports -1: no input is overwritten.
func (HostOp) OverwritesInput() int { return -1 }
