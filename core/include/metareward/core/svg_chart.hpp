/// @file svg_chart.hpp
/// Small, dependency-free SVG charts for run reports: line charts over a numeric x axis and
/// grouped bar charts over categories, each with axes, ticks, axis labels, a legend, a title and
/// optional horizontal reference lines. The output is deterministic text (fixed number
/// formatting, a fixed palette) meant to be inlined into an HTML page: it needs no script, no
/// stylesheet and no external resource.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace mr::core::svg {

/// A horizontal line across the plot area at `y` (e.g. 0.5 for an unbiased rate), dashed.
struct ReferenceLine {
  double y = 0;
  std::string label;  ///< Drawn at the line's right end; may be empty.
};

/// What every chart has: the <svg> id, its texts and size.
struct ChartFrame {
  std::string id;  ///< The <svg> element's id attribute; unique within the page.
  std::string title;
  std::string x_label;
  std::string y_label;
  int width = 640;
  int height = 300;
  std::vector<ReferenceLine> references;
};

/// One line of a line chart: a polyline through `points` in the given order and a marker per
/// point. Points with a non-finite coordinate are left out.
struct LineSeries {
  std::string name;                               ///< Legend entry.
  std::vector<std::pair<double, double>> points;  ///< (x, y)
  /// A confidence interval drawn as an error bar at `x` (from `low` to `high`).
  struct Interval {
    double x = 0, low = 0, high = 0;
  };
  std::vector<Interval> intervals;  ///< Optional; non-finite ones are left out.
};

/// A line chart over a numeric x axis.
struct LineChart : ChartFrame {
  std::vector<LineSeries> series;
  bool integer_x = false;  ///< Ticks on x only at integers (iterations, steps).
};

/// A grouped bar chart: one group per category, one bar per series within each group.
struct BarChart : ChartFrame {
  std::vector<std::string> categories;  ///< The x axis groups, left to right.
  std::vector<std::string> series;      ///< The bars within each group (legend entries).
  /// values[s][c]: the bar of series s in category c; nullopt draws no bar. Missing trailing
  /// entries count as nullopt.
  std::vector<std::vector<std::optional<double>>> values;
};

/// The chart as one <svg> element. Polylines carry class="series", markers class="marker", error
/// bars class="error-bar",
/// bars class="bar", legend swatches class="swatch", reference lines class="reference"; each
/// marker and bar has a <title> child with its value (the browser's tooltip).
std::string render_line_chart(const LineChart& chart);
/// The chart as one <svg> element (see render_line_chart for the classes).
std::string render_bar_chart(const BarChart& chart);

/// `text` with &, <, >, " and ' replaced by entities: safe in XML/HTML text and attributes.
std::string escape_xml(std::string_view text);

/// A number as text, the same on every machine: integers without a fraction ("80"), others
/// rounded to 4 decimals with trailing zeros removed ("3.12", "0.0592"), magnitudes below
/// 0.001 in exponent form ("5e-07"); "nan", "inf" and "-inf" for non-finite values.
std::string format_number(double value);

/// Tick positions for [lo, hi]: about `target` round steps (1, 2, 2.5 or 5 times a power of
/// ten; whole numbers >= 1 when `integer`), every tick inside [lo, hi] (tolerating rounding).
/// lo == hi gives that single value.
std::vector<double> nice_ticks(double lo, double hi, int target, bool integer);

}  // namespace mr::core::svg
