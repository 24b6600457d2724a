// Line and grouped-bar charts as inline SVG text for the run report.
#include "metareward/core/svg_chart.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <sstream>

namespace mr::core::svg {

namespace {

// A fixed palette (Tableau 10): colors follow the series order, the same in every report.
constexpr const char* kPalette[] = {"#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f",
                                    "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac"};
constexpr int kPaletteSize = sizeof(kPalette) / sizeof(kPalette[0]);

const char* color(std::size_t index) {
  return kPalette[index % kPaletteSize];
}

/// `value` with `decimals` decimals, trailing zeros and a trailing point removed.
std::string trimmed_fixed(double value, int decimals) {
  char buffer[64];
  std::snprintf(buffer, sizeof buffer, "%.*f", decimals, value);
  std::string text = buffer;
  if (text.find('.') != std::string::npos) {
    text.erase(text.find_last_not_of('0') + 1);
    if (text.back() == '.') text.pop_back();
  }
  if (text == "-0") text = "0";
  return text;
}

/// An SVG coordinate: two decimals are plenty at screen resolution and keep the text short.
std::string coord(double value) {
  return trimmed_fixed(value, 2);
}

/// A round step near span / target: 1, 2, 2.5 or 5 times a power of ten (whole when `integer`).
double nice_step(double span, int target, bool integer) {
  double raw = span / std::max(1, target);
  if (!(raw > 0) || !std::isfinite(raw)) raw = 1;
  const double magnitude = std::pow(10.0, std::floor(std::log10(raw)));
  const double norm = raw / magnitude;
  double factor = norm <= 1 ? 1 : norm <= 2 ? 2 : norm <= 2.5 ? 2.5 : norm <= 5 ? 5 : 10;
  if (integer && factor == 2.5 && magnitude < 10) factor = 5;
  double step = factor * magnitude;
  if (integer) step = std::max(1.0, std::ceil(step - 1e-9));
  return step;
}

/// A value axis: [lo, hi] widened to whole steps, and its ticks.
struct Axis {
  double lo = 0;
  double hi = 1;
  std::vector<double> ticks;
};

/// The y axis over `values`: widened to round steps, never degenerate.
Axis value_axis(const std::vector<double>& values, bool include_zero) {
  Axis axis;
  if (values.empty()) {
    axis.ticks = nice_ticks(0, 1, 5, false);
    return axis;
  }
  double lo = *std::min_element(values.begin(), values.end());
  double hi = *std::max_element(values.begin(), values.end());
  if (include_zero) {
    lo = std::min(lo, 0.0);
    hi = std::max(hi, 0.0);
  }
  if (lo == hi) {
    const double pad = lo == 0 ? 1 : std::abs(lo) * 0.1;
    lo -= pad;
    hi += pad;
  }
  const double step = nice_step(hi - lo, 5, false);
  axis.lo = std::floor(lo / step + 1e-9) * step;
  axis.hi = std::ceil(hi / step - 1e-9) * step;
  axis.ticks = nice_ticks(axis.lo, axis.hi, 5, false);
  return axis;
}

/// The layout shared by both chart kinds: the plot rectangle inside the frame.
struct Layout {
  double left = 0, right = 0, top = 0, bottom = 0;  // plot area edges
  double legend_x = 0;
};

Layout layout_for(const ChartFrame& frame, const std::vector<std::string>& legend) {
  std::size_t longest = 0;
  for (const auto& name : legend) longest = std::max(longest, name.size());
  // About 6.5 px per character at 12 px, plus the swatch; clamped so the plot keeps its room.
  const double legend_width = std::clamp(34.0 + 6.5 * static_cast<double>(longest), 90.0, 220.0);
  Layout l;
  l.left = 64;
  l.right = frame.width - legend_width - 12;
  l.top = 36;
  l.bottom = frame.height - 46;
  l.legend_x = l.right + 16;
  return l;
}

/// Writes one chart: frame, y axis, x ticks, references, data and legend, in that order.
class ChartWriter {
 public:
  ChartWriter(const ChartFrame& frame, const Layout& layout, const Axis& y_axis)
      : frame_(frame), l_(layout), y_(y_axis) {}

  double py(double y) const {
    return l_.bottom - (y - y_.lo) / (y_.hi - y_.lo) * (l_.bottom - l_.top);
  }

  void open() {
    const std::string id = escape_xml(frame_.id);
    const std::string w = std::to_string(frame_.width), h = std::to_string(frame_.height);
    out_ << "<svg id=\"" << id << "\" class=\"chart\" width=\"" << w << "\" height=\"" << h
         << "\" viewBox=\"0 0 " << w << " " << h
         << "\" font-family=\"sans-serif\" font-size=\"12\" role=\"img\" aria-labelledby=\"" << id
         << "-title\">\n";
    out_ << "<title id=\"" << id << "-title\">" << escape_xml(frame_.title) << "</title>\n";
    out_ << "<rect class=\"background\" x=\"0\" y=\"0\" width=\"" << w << "\" height=\"" << h
         << "\" fill=\"#ffffff\"/>\n";
    out_ << "<text class=\"chart-title\" x=\"" << coord(frame_.width / 2.0)
         << "\" y=\"20\" text-anchor=\"middle\" font-size=\"14\" font-weight=\"bold\">"
         << escape_xml(frame_.title) << "</text>\n";
    // Horizontal grid and y ticks.
    out_ << "<g class=\"y-axis\">\n";
    for (double t : y_.ticks) {
      const std::string y = coord(py(t));
      out_ << "<line class=\"grid\" x1=\"" << coord(l_.left) << "\" y1=\"" << y << "\" x2=\""
           << coord(l_.right) << "\" y2=\"" << y << "\" stroke=\"#e6e6e6\"/>\n";
      out_ << "<text x=\"" << coord(l_.left - 6) << "\" y=\"" << y
           << "\" text-anchor=\"end\" dominant-baseline=\"middle\">" << format_number(t)
           << "</text>\n";
    }
    out_ << "</g>\n";
    // Axis lines.
    out_ << "<line class=\"axis\" x1=\"" << coord(l_.left) << "\" y1=\"" << coord(l_.bottom)
         << "\" x2=\"" << coord(l_.right) << "\" y2=\"" << coord(l_.bottom)
         << "\" stroke=\"#333333\"/>\n";
    out_ << "<line class=\"axis\" x1=\"" << coord(l_.left) << "\" y1=\"" << coord(l_.top)
         << "\" x2=\"" << coord(l_.left) << "\" y2=\"" << coord(l_.bottom)
         << "\" stroke=\"#333333\"/>\n";
    // Axis labels.
    const double mid_x = (l_.left + l_.right) / 2, mid_y = (l_.top + l_.bottom) / 2;
    out_ << "<text class=\"x-label\" x=\"" << coord(mid_x) << "\" y=\""
         << coord(frame_.height - 10.0) << "\" text-anchor=\"middle\">"
         << escape_xml(frame_.x_label) << "</text>\n";
    out_ << "<text class=\"y-label\" x=\"16\" y=\"" << coord(mid_y)
         << "\" text-anchor=\"middle\" transform=\"rotate(-90 16 " << coord(mid_y) << ")\">"
         << escape_xml(frame_.y_label) << "</text>\n";
  }

  /// An x tick mark and its label at pixel `x`.
  void x_tick(double x, const std::string& label) {
    const std::string xs = coord(x);
    out_ << "<line class=\"tick\" x1=\"" << xs << "\" y1=\"" << coord(l_.bottom) << "\" x2=\"" << xs
         << "\" y2=\"" << coord(l_.bottom + 5) << "\" stroke=\"#333333\"/>\n";
    out_ << "<text x=\"" << xs << "\" y=\"" << coord(l_.bottom + 18) << "\" text-anchor=\"middle\">"
         << escape_xml(label) << "</text>\n";
  }

  void references() {
    for (const auto& r : frame_.references) {
      if (!std::isfinite(r.y)) continue;
      const std::string y = coord(py(r.y));
      out_ << "<line class=\"reference\" x1=\"" << coord(l_.left) << "\" y1=\"" << y << "\" x2=\""
           << coord(l_.right) << "\" y2=\"" << y
           << "\" stroke=\"#777777\" stroke-dasharray=\"6 4\"/>\n";
      if (!r.label.empty())
        out_ << "<text class=\"reference-label\" x=\"" << coord(l_.right - 4) << "\" y=\""
             << coord(py(r.y) - 4) << "\" text-anchor=\"end\" fill=\"#555555\">"
             << escape_xml(r.label) << "</text>\n";
    }
  }

  void legend(const std::vector<std::string>& names) {
    out_ << "<g class=\"legend\">\n";
    for (std::size_t i = 0; i < names.size(); ++i) {
      const double y = l_.top + 4 + 18.0 * static_cast<double>(i);
      out_ << "<rect class=\"swatch\" x=\"" << coord(l_.legend_x) << "\" y=\"" << coord(y)
           << "\" width=\"12\" height=\"12\" fill=\"" << color(i) << "\"/>\n";
      out_ << "<text x=\"" << coord(l_.legend_x + 18) << "\" y=\"" << coord(y + 10) << "\">"
           << escape_xml(names[i]) << "</text>\n";
    }
    out_ << "</g>\n";
  }

  void no_data() {
    out_ << "<text class=\"no-data\" x=\"" << coord((l_.left + l_.right) / 2) << "\" y=\""
         << coord((l_.top + l_.bottom) / 2)
         << "\" text-anchor=\"middle\" fill=\"#777777\">no data</text>\n";
  }

  std::ostream& out() { return out_; }

  std::string close() {
    out_ << "</svg>\n";
    return out_.str();
  }

 private:
  const ChartFrame& frame_;
  Layout l_;
  Axis y_;
  std::ostringstream out_;
};

}  // namespace

std::string escape_xml(std::string_view text) {
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
        out += "&#39;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

std::string format_number(double value) {
  if (std::isnan(value)) return "nan";
  if (std::isinf(value)) return value > 0 ? "inf" : "-inf";
  if (value == 0) return "0";
  if (std::abs(value) < 1e-3) {
    // Exponent form with up to 4 significant digits: "5e-07", "1.25e-05".
    char buffer[64];
    std::snprintf(buffer, sizeof buffer, "%.3e", value);
    std::string text = buffer;
    const auto e = text.find('e');
    std::string mantissa = text.substr(0, e);
    mantissa.erase(mantissa.find_last_not_of('0') + 1);
    if (mantissa.back() == '.') mantissa.pop_back();
    return mantissa + text.substr(e);
  }
  return trimmed_fixed(value, 4);
}

std::vector<double> nice_ticks(double lo, double hi, int target, bool integer) {
  if (!std::isfinite(lo) || !std::isfinite(hi)) return {};
  if (lo > hi) std::swap(lo, hi);
  if (lo == hi) return {lo};
  const double step = nice_step(hi - lo, target, integer);
  const double first = std::ceil(lo / step - 1e-9), last = std::floor(hi / step + 1e-9);
  std::vector<double> ticks;
  for (double k = first; k <= last && ticks.size() < 200; k += 1) {
    double t = k * step;
    if (std::abs(t) < step * 1e-9) t = 0;
    ticks.push_back(t);
  }
  return ticks;
}

std::string render_line_chart(const LineChart& chart) {
  std::vector<std::string> names;
  std::vector<double> xs, ys;
  for (const auto& s : chart.series) {
    names.push_back(s.name);
    for (const auto& [x, y] : s.points) {
      if (!std::isfinite(x) || !std::isfinite(y)) continue;
      xs.push_back(x);
      ys.push_back(y);
    }
    for (const auto& ci : s.intervals) {
      if (!std::isfinite(ci.x) || !std::isfinite(ci.low) || !std::isfinite(ci.high)) continue;
      xs.push_back(ci.x);
      ys.push_back(ci.low);
      ys.push_back(ci.high);
    }
  }
  std::vector<double> y_values = ys;
  for (const auto& r : chart.references)
    if (std::isfinite(r.y)) y_values.push_back(r.y);
  const Layout l = layout_for(chart, names);
  ChartWriter w(chart, l, value_axis(y_values, false));
  w.open();

  double x_lo = 0, x_hi = 1;
  if (!xs.empty()) {
    x_lo = *std::min_element(xs.begin(), xs.end());
    x_hi = *std::max_element(xs.begin(), xs.end());
  }
  if (x_lo == x_hi) {
    x_lo -= 0.5;
    x_hi += 0.5;
  }
  // Inner padding keeps the first and last markers off the axis lines.
  const double pad = 12;
  auto px = [&](double x) {
    return l.left + pad + (x - x_lo) / (x_hi - x_lo) * (l.right - l.left - 2 * pad);
  };
  for (double t : nice_ticks(x_lo, x_hi, 6, chart.integer_x)) w.x_tick(px(t), format_number(t));
  w.references();

  std::ostream& out = w.out();
  out << "<g class=\"data\">\n";
  for (std::size_t i = 0; i < chart.series.size(); ++i) {
    const auto& s = chart.series[i];
    std::vector<std::pair<double, double>> points;
    for (const auto& p : s.points)
      if (std::isfinite(p.first) && std::isfinite(p.second)) points.push_back(p);
    for (const auto& ci : s.intervals) {
      if (!std::isfinite(ci.x) || !std::isfinite(ci.low) || !std::isfinite(ci.high)) continue;
      const double x = px(ci.x), lo = w.py(ci.low), hi = w.py(ci.high);
      out << "<path class=\"error-bar\" d=\"M" << coord(x - 4) << "," << coord(lo) << "H"
          << coord(x + 4) << "M" << coord(x) << "," << coord(lo) << "V" << coord(hi) << "M"
          << coord(x - 4) << "," << coord(hi) << "H" << coord(x + 4) << "\" stroke=\"" << color(i)
          << "\" stroke-width=\"1.5\" fill=\"none\"><title>" << escape_xml(s.name)
          << ": x = " << format_number(ci.x) << ", interval [" << format_number(ci.low) << ", "
          << format_number(ci.high) << "]</title></path>\n";
    }
    if (points.empty()) continue;
    out << "<polyline class=\"series\" data-series=\"" << escape_xml(s.name) << "\" points=\"";
    for (std::size_t k = 0; k < points.size(); ++k)
      out << (k ? " " : "") << coord(px(points[k].first)) << "," << coord(w.py(points[k].second));
    out << "\" fill=\"none\" stroke=\"" << color(i) << "\" stroke-width=\"2\"/>\n";
    // Smaller markers on long series, so that the line stays readable.
    const char* radius = points.size() > 30 ? "2" : "3";
    for (const auto& [x, y] : points)
      out << "<circle class=\"marker\" cx=\"" << coord(px(x)) << "\" cy=\"" << coord(w.py(y))
          << "\" r=\"" << radius << "\" fill=\"" << color(i) << "\"><title>" << escape_xml(s.name)
          << ": x = " << format_number(x) << ", y = " << format_number(y) << "</title></circle>\n";
  }
  out << "</g>\n";
  if (xs.empty()) w.no_data();
  w.legend(names);
  return w.close();
}

std::string render_bar_chart(const BarChart& chart) {
  std::vector<double> y_values;
  auto value_at = [&](std::size_t s, std::size_t c) -> std::optional<double> {
    if (s >= chart.values.size() || c >= chart.values[s].size()) return std::nullopt;
    const auto& v = chart.values[s][c];
    if (!v || !std::isfinite(*v)) return std::nullopt;
    return v;
  };
  bool any = false;
  for (std::size_t s = 0; s < chart.series.size(); ++s)
    for (std::size_t c = 0; c < chart.categories.size(); ++c)
      if (auto v = value_at(s, c)) {
        y_values.push_back(*v);
        any = true;
      }
  for (const auto& r : chart.references)
    if (std::isfinite(r.y)) y_values.push_back(r.y);
  const Layout l = layout_for(chart, chart.series);
  ChartWriter w(chart, l, value_axis(y_values, true));
  w.open();

  const std::size_t n = std::max<std::size_t>(1, chart.categories.size());
  const std::size_t m = std::max<std::size_t>(1, chart.series.size());
  const double group = (l.right - l.left) / static_cast<double>(n);
  // Bars share 80% of their group, at most 48 px wide each, centred in the group.
  const double bar = std::min(48.0, group * 0.8 / static_cast<double>(m));
  const double inset = (group - bar * static_cast<double>(m)) / 2;
  for (std::size_t c = 0; c < chart.categories.size(); ++c)
    w.x_tick(l.left + group * (static_cast<double>(c) + 0.5), chart.categories[c]);

  std::ostream& out = w.out();
  out << "<g class=\"data\">\n";
  for (std::size_t s = 0; s < chart.series.size(); ++s) {
    for (std::size_t c = 0; c < chart.categories.size(); ++c) {
      const auto v = value_at(s, c);
      if (!v) continue;
      const double x =
          l.left + group * static_cast<double>(c) + inset + bar * static_cast<double>(s);
      const double top = w.py(std::max(*v, 0.0)), bottom = w.py(std::min(*v, 0.0));
      out << "<rect class=\"bar\" x=\"" << coord(x) << "\" y=\"" << coord(top) << "\" width=\""
          << coord(bar) << "\" height=\"" << coord(bottom - top) << "\" fill=\"" << color(s)
          << "\"><title>" << escape_xml(chart.series[s]) << ", " << escape_xml(chart.categories[c])
          << ": " << format_number(*v) << "</title></rect>\n";
    }
  }
  out << "</g>\n";
  // Reference lines over the bars so they stay visible.
  w.references();
  if (!any) w.no_data();
  w.legend(chart.series);
  return w.close();
}

}  // namespace mr::core::svg
