// SVG line chart; see svg_plot.h for the layout and the data-to-pixel mapping.
#include "launch/svg_plot.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <sstream>

namespace ts::cli {
namespace {

constexpr const char* kColors[] = {"#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e"};
constexpr int kNumColors = sizeof(kColors) / sizeof(kColors[0]);

// Margins around the plot area, in pixels.
constexpr int kLeft = 78;
constexpr int kRight = 24;
constexpr int kTop = 72;  // title, then the legend row
constexpr int kBottom = 62;

std::string Num(double v) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.2f", v);
  return buf;
}

std::string TickLabel(double v) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%g", v);
  return buf;
}

// A marker of kind `kind` (0 circle, 1 square, 2 triangle, 3 diamond) centred on (cx, cy).
void Marker(std::ostringstream& out, int kind, double cx, double cy, const char* color) {
  const double r = 4.5;
  switch (kind % 4) {
    case 0:
      out << "<circle cx=\"" << Num(cx) << "\" cy=\"" << Num(cy) << "\" r=\"" << Num(r) << "\"";
      break;
    case 1:
      out << "<rect x=\"" << Num(cx - r) << "\" y=\"" << Num(cy - r) << "\" width=\"" << Num(2 * r)
          << "\" height=\"" << Num(2 * r) << "\"";
      break;
    case 2:
      out << "<polygon points=\"" << Num(cx) << "," << Num(cy - 1.2 * r) << " " << Num(cx - r)
          << "," << Num(cy + 0.8 * r) << " " << Num(cx + r) << "," << Num(cy + 0.8 * r) << "\"";
      break;
    default:
      out << "<polygon points=\"" << Num(cx) << "," << Num(cy - 1.2 * r) << " " << Num(cx + 1.2 * r)
          << "," << Num(cy) << " " << Num(cx) << "," << Num(cy + 1.2 * r) << " "
          << Num(cx - 1.2 * r) << "," << Num(cy) << "\"";
      break;
  }
  out << " fill=\"" << color << "\" stroke=\"white\" stroke-width=\"1\"/>\n";
}

}  // namespace

std::string XmlEscape(const std::string& text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&apos;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

std::vector<double> NiceTicks(double max_value, int target) {
  if (!(max_value > 0) || !std::isfinite(max_value)) return {0.0, 1.0};
  target = std::max(target, 1);
  const double raw = max_value / target;
  const double power = std::pow(10.0, std::floor(std::log10(raw)));
  double step = 10 * power;
  for (double m : {1.0, 2.0, 2.5, 5.0, 10.0}) {
    if (m * power >= raw) {
      step = m * power;
      break;
    }
  }
  std::vector<double> ticks;
  for (int k = 0;; ++k) {
    ticks.push_back(k * step);
    // Relative slack: k * step may land a rounding error below max_value.
    if (k * step >= max_value * (1 - 1e-9)) break;
  }
  return ticks;
}

std::string RenderLinePlotSvg(const LinePlot& plot) {
  double x_max = 0;
  double y_max = 0;
  for (const PlotSeries& s : plot.series) {
    for (double v : s.x) x_max = std::max(x_max, v);
    for (double v : s.y) y_max = std::max(y_max, v);
  }
  const std::vector<double> x_ticks = NiceTicks(x_max);
  const std::vector<double> y_ticks = NiceTicks(y_max);
  const double x_top = x_ticks.back();
  const double y_top = y_ticks.back();
  const double w = plot.width - kLeft - kRight;
  const double h = plot.height - kTop - kBottom;
  auto px = [&](double x) { return kLeft + x / x_top * w; };
  auto py = [&](double y) { return kTop + h - y / y_top * h; };

  std::ostringstream out;
  out << "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
      << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << plot.width << "\" height=\""
      << plot.height << "\" viewBox=\"0 0 " << plot.width << " " << plot.height
      << "\" font-family=\"DejaVu Sans, Helvetica, Arial, sans-serif\">\n"
      << "<rect x=\"0\" y=\"0\" width=\"" << plot.width << "\" height=\"" << plot.height
      << "\" fill=\"white\"/>\n"
      << "<text x=\"" << plot.width / 2 << "\" y=\"30\" text-anchor=\"middle\" font-size=\"16\" "
      << "font-weight=\"bold\">" << XmlEscape(plot.title) << "</text>\n";

  // Grid lines and tick labels.
  out << "<g stroke=\"#dddddd\" stroke-width=\"1\">\n";
  for (double t : y_ticks) {
    out << "<line x1=\"" << Num(px(0)) << "\" y1=\"" << Num(py(t)) << "\" x2=\"" << Num(px(x_top))
        << "\" y2=\"" << Num(py(t)) << "\"/>\n";
  }
  for (double t : x_ticks) {
    out << "<line x1=\"" << Num(px(t)) << "\" y1=\"" << Num(py(0)) << "\" x2=\"" << Num(px(t))
        << "\" y2=\"" << Num(py(y_top)) << "\"/>\n";
  }
  out << "</g>\n<g font-size=\"12\" fill=\"#333333\">\n";
  for (double t : y_ticks) {
    out << "<text x=\"" << Num(px(0) - 8) << "\" y=\"" << Num(py(t) + 4)
        << "\" text-anchor=\"end\">" << TickLabel(t) << "</text>\n";
  }
  for (double t : x_ticks) {
    out << "<text x=\"" << Num(px(t)) << "\" y=\"" << Num(py(0) + 18)
        << "\" text-anchor=\"middle\">" << TickLabel(t) << "</text>\n";
  }
  out << "</g>\n";
  // Axes and their labels.
  out << "<g stroke=\"#333333\" stroke-width=\"1.5\">\n"
      << "<line x1=\"" << Num(px(0)) << "\" y1=\"" << Num(py(0)) << "\" x2=\"" << Num(px(x_top))
      << "\" y2=\"" << Num(py(0)) << "\"/>\n"
      << "<line x1=\"" << Num(px(0)) << "\" y1=\"" << Num(py(0)) << "\" x2=\"" << Num(px(0))
      << "\" y2=\"" << Num(py(y_top)) << "\"/>\n</g>\n";
  out << "<text x=\"" << Num(kLeft + w / 2) << "\" y=\"" << plot.height - 16
      << "\" text-anchor=\"middle\" font-size=\"14\">" << XmlEscape(plot.x_label) << "</text>\n"
      << "<text x=\"20\" y=\"" << Num(kTop + h / 2) << "\" text-anchor=\"middle\" font-size=\"14\" "
      << "transform=\"rotate(-90 20 " << Num(kTop + h / 2) << ")\">" << XmlEscape(plot.y_label)
      << "</text>\n";

  // Series: a polyline, then its markers on top.
  for (size_t i = 0; i < plot.series.size(); ++i) {
    const PlotSeries& s = plot.series[i];
    const char* color = kColors[i % kNumColors];
    const size_t n = std::min(s.x.size(), s.y.size());
    out << "<polyline fill=\"none\" stroke=\"" << color << "\" stroke-width=\"2\" points=\"";
    for (size_t k = 0; k < n; ++k) {
      out << (k ? " " : "") << Num(px(s.x[k])) << "," << Num(py(s.y[k]));
    }
    out << "\"/>\n";
    for (size_t k = 0; k < n; ++k) Marker(out, static_cast<int>(i), px(s.x[k]), py(s.y[k]), color);
  }

  // Legend: one row between the title and the plot area, centred, so it never hides data.
  if (!plot.series.empty()) {
    std::vector<double> widths;  // per entry: line sample, gap, text (estimated 7.5 px a char)
    double total = 0;
    for (const PlotSeries& s : plot.series) {
      widths.push_back(40 + 7.5 * s.name.size());
      total += widths.back() + 16;
    }
    double lx = plot.width / 2.0 - total / 2;
    const double ly = 52;
    for (size_t i = 0; i < plot.series.size(); ++i) {
      const char* color = kColors[i % kNumColors];
      out << "<line x1=\"" << Num(lx) << "\" y1=\"" << Num(ly) << "\" x2=\"" << Num(lx + 28)
          << "\" y2=\"" << Num(ly) << "\" stroke=\"" << color << "\" stroke-width=\"2\"/>\n";
      Marker(out, static_cast<int>(i), lx + 14, ly, color);
      out << "<text x=\"" << Num(lx + 34) << "\" y=\"" << Num(ly + 4) << "\" font-size=\"13\">"
          << XmlEscape(plot.series[i].name) << "</text>\n";
      lx += widths[i] + 16;
    }
  }
  out << "</svg>\n";
  return out.str();
}

}  // namespace ts::cli
