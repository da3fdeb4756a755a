package synth

import (
	"image"
	"math"
	"math/rand/v2"

	"resdet/box"
)

// rgb is a colour as float components in [0, 255].
type rgb [3]float64

func lerp(a, b rgb, t float64) rgb {
	return rgb{a[0] + (b[0]-a[0])*t, a[1] + (b[1]-a[1])*t, a[2] + (b[2]-a[2])*t}
}

// hsv converts hue h in [0,1), saturation s and value v in [0,1].
func hsv(h, s, v float64) rgb {
	i := int(h * 6)
	f := h*6 - float64(i)
	p, q, t := v*(1-s), v*(1-s*f), v*(1-s*(1-f))
	var c rgb
	switch i % 6 {
	case 0:
		c = rgb{v, t, p}
	case 1:
		c = rgb{q, v, p}
	case 2:
		c = rgb{p, v, t}
	case 3:
		c = rgb{p, q, v}
	case 4:
		c = rgb{t, p, v}
	default:
		c = rgb{v, p, q}
	}
	return rgb{c[0] * 255, c[1] * 255, c[2] * 255}
}

// backgroundColour is a muted colour: low saturation, any brightness.
func backgroundColour(rng *rand.Rand) rgb {
	return hsv(rng.Float64(), 0.1+0.3*rng.Float64(), 0.15+0.8*rng.Float64())
}

// paintBackground fills img with one of four textures in two or more muted
// colours: linear gradient, sine stripes, checkerboard, smooth blotches.
func paintBackground(img *image.RGBA, rng *rand.Rand) {
	W, H := img.Rect.Dx(), img.Rect.Dy()
	a, b := backgroundColour(rng), backgroundColour(rng)
	angle := rng.Float64() * math.Pi
	ca, sa := math.Cos(angle), math.Sin(angle)
	var at func(x, y int) rgb
	switch rng.IntN(4) {
	case 0: // gradient along a random direction
		span := math.Abs(ca)*float64(W) + math.Abs(sa)*float64(H)
		off := math.Min(0, ca*float64(W)) + math.Min(0, sa*float64(H))
		at = func(x, y int) rgb {
			return lerp(a, b, (ca*float64(x)+sa*float64(y)-off)/span)
		}
	case 1: // stripes
		period := 6 + 34*rng.Float64()
		at = func(x, y int) rgb {
			return lerp(a, b, 0.5+0.5*math.Sin(2*math.Pi*(ca*float64(x)+sa*float64(y))/period))
		}
	case 2: // checkerboard
		cell := 6 + rng.IntN(27)
		at = func(x, y int) rgb {
			return lerp(a, b, float64((x/cell+y/cell)%2))
		}
	default: // blotches: random colours on a coarse grid, bilinear in between
		cell := 24 + rng.IntN(41)
		gw, gh := W/cell+2, H/cell+2
		grid := make([]rgb, gw*gh)
		for i := range grid {
			grid[i] = backgroundColour(rng)
		}
		at = func(x, y int) rgb {
			fx, fy := float64(x)/float64(cell), float64(y)/float64(cell)
			ix, iy := int(fx), int(fy)
			tx, ty := fx-float64(ix), fy-float64(iy)
			top := lerp(grid[iy*gw+ix], grid[iy*gw+ix+1], tx)
			bot := lerp(grid[(iy+1)*gw+ix], grid[(iy+1)*gw+ix+1], tx)
			return lerp(top, bot, ty)
		}
	}
	for y := range H {
		for x := range W {
			c := at(x, y)
			o := img.PixOffset(x, y)
			img.Pix[o], img.Pix[o+1], img.Pix[o+2], img.Pix[o+3] = clamp8(c[0]), clamp8(c[1]), clamp8(c[2]), 255
		}
	}
}

func clamp8(v float64) uint8 { return uint8(math.Round(math.Min(255, math.Max(0, v)))) }

// addNoise adds uniform noise in [-amp, amp] to every channel of every pixel.
func addNoise(img *image.RGBA, amp int, rng *rand.Rand) {
	if amp == 0 {
		return
	}
	for i := 0; i < len(img.Pix); i += 4 {
		for k := range 3 {
			img.Pix[i+k] = clamp8(float64(int(img.Pix[i+k]) + rng.IntN(2*amp+1) - amp))
		}
	}
}

// objectColour picks a saturated colour far (in RGB distance) from the mean
// colour of img inside b, trying a few candidates.
func objectColour(img *image.RGBA, b box.Box, rng *rand.Rand) [3]uint8 {
	var mean rgb
	n := 0
	for y := int(b.Y1); y < int(b.Y2); y += 2 {
		for x := int(b.X1); x < int(b.X2); x += 2 {
			o := img.PixOffset(x, y)
			for k := range 3 {
				mean[k] += float64(img.Pix[o+k])
			}
			n++
		}
	}
	for k := range 3 {
		mean[k] /= float64(max(n, 1))
	}
	var best rgb
	bestD := -1.0
	for range 8 {
		c := hsv(rng.Float64(), 0.55+0.45*rng.Float64(), 0.45+0.55*rng.Float64())
		d := math.Sqrt((c[0]-mean[0])*(c[0]-mean[0]) + (c[1]-mean[1])*(c[1]-mean[1]) + (c[2]-mean[2])*(c[2]-mean[2]))
		if d > bestD {
			best, bestD = c, d
		}
		if d >= 120 {
			break
		}
	}
	return [3]uint8{clamp8(best[0]), clamp8(best[1]), clamp8(best[2])}
}

// classColour picks a saturated colour in class k's band of hues:
// (k+0.5)/numClasses ± 0.25/numClasses.
func classColour(k int, rng *rand.Rand) [3]uint8 {
	h := (float64(k) + 0.25 + 0.5*rng.Float64()) / numClasses
	c := hsv(h, 0.6+0.4*rng.Float64(), 0.55+0.45*rng.Float64())
	return [3]uint8{clamp8(c[0]), clamp8(c[1]), clamp8(c[2])}
}
