// A line chart written directly as SVG text (no plotting dependency), for `tokenswift bench`'s
// speed curve (tokens/s against generated tokens, one polyline per decoding mode, as in the
// TokenSwift paper's speed figure).
//
// Layout. The canvas is width x height pixels; the plot area leaves margins for the title and
// the legend row (top) and for the tick labels and axis labels (left, bottom).
// Both axes start at 0 (speeds and lengths are non-negative; a zero-based y axis keeps ratios
// honest) and end at the first "nice" tick at or above the largest value: ticks are 1, 2, 2.5 or 5
// times a power of ten, about 5 per axis (NiceTicks). Data point (x, y) maps to
//   px = left + (x / x_max) * plot_width,   py = top + plot_height - (y / y_max) * plot_height.
// Each series is one <polyline> plus one marker per point (circle, square, triangle, diamond,
// cycling), in its own colour; all text goes through XML escaping, so titles may hold '&' or '<'.
#pragma once

#include <string>
#include <vector>

namespace ts::cli {

struct PlotSeries {
  std::string name;       // legend entry
  std::vector<double> x;  // (points)
  std::vector<double> y;  // (points)
};

struct LinePlot {
  std::string title;
  std::string x_label;
  std::string y_label;
  std::vector<PlotSeries> series;
  int width = 760;
  int height = 460;
};

// Ticks 0, step, 2*step, ... up to the first tick >= max_value, step a nice number (1, 2, 2.5 or
// 5 times a power of ten) giving about `target` intervals. max_value <= 0 gives {0, 1}.
std::vector<double> NiceTicks(double max_value, int target = 5);

// The chart as a complete SVG document (UTF-8, with an XML declaration).
std::string RenderLinePlotSvg(const LinePlot& plot);

// &, <, >, " and ' as XML entities.
std::string XmlEscape(const std::string& text);

}  // namespace ts::cli
