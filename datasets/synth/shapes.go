package synth

import "math"

// Classes returns the class names of the synthetic dataset in label order.
func Classes() []string {
	return []string{"circle", "square", "triangle", "ellipse", "star", "cross"}
}

// Labels, indices into Classes().
const (
	circle = iota
	square
	triangle
	ellipse
	star
	cross
	numClasses
)

// shape is one object to paint: class, centre and half-sizes in pixels, and
// a variant bit (triangle pointing down, ellipse standing).
type shape struct {
	class    int
	cx, cy   float64
	rx, ry   float64 // half width and half height of the shape's frame
	flip     bool
	starPoly [10][2]float64 // star vertices in unit frame coordinates
}

// starVertices returns a five-pointed star's vertices in the unit frame
// [-1,1]^2: outer radius 1, inner 0.45, first point up.
func starVertices() [10][2]float64 {
	var v [10][2]float64
	for k := range 10 {
		r := 1.0
		if k%2 == 1 {
			r = 0.45
		}
		a := -math.Pi/2 + float64(k)*math.Pi/5
		v[k] = [2]float64{r * math.Cos(a), r * math.Sin(a)}
	}
	return v
}

// inside reports whether the point (x, y) (pixel coordinates; a pixel's
// centre is at +0.5) lies in the shape.
func (s *shape) inside(x, y float64) bool {
	u, v := (x-s.cx)/s.rx, (y-s.cy)/s.ry
	if u < -1 || u > 1 || v < -1 || v > 1 {
		return false
	}
	switch s.class {
	case circle, ellipse:
		return u*u+v*v <= 1
	case square:
		return true
	case triangle:
		if s.flip {
			v = -v
		}
		// apex at v = -1, base at v = 1
		return math.Abs(u) <= (v+1)/2
	case cross:
		const arm = 0.34
		return math.Abs(u) <= arm || math.Abs(v) <= arm
	case star:
		return inPolygon(s.starPoly[:], u, v)
	}
	panic("synth: unknown class")
}

// inPolygon is the even-odd rule for point (x, y).
func inPolygon(p [][2]float64, x, y float64) bool {
	in := false
	for i, j := 0, len(p)-1; i < len(p); j, i = i, i+1 {
		xi, yi, xj, yj := p[i][0], p[i][1], p[j][0], p[j][1]
		if (yi > y) != (yj > y) && x < (xj-xi)*(y-yi)/(yj-yi)+xi {
			in = !in
		}
	}
	return in
}
