// A uPlot chart that fills its container's width and follows its resizes.
// The canvas is decoration for sighted users: callers give the same numbers
// as text next to it (a caption and a table), so the chart itself is
// hidden from assistive technology.
import { useEffect, useRef } from "preact/hooks";
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";

/** uPlot's options without the size, which the container decides. */
export type ChartOptions = Omit<uPlot.Options, "width" | "height">;

/** The data of a chart: x values first, then one array per series. */
export type ChartData = uPlot.AlignedData;

const MIN_WIDTH = 260;

export function Chart({ options, data, height = 280, class: className }: { options: ChartOptions; data: ChartData; height?: number; class?: string }) {
  const ref = useRef<HTMLDivElement>(null);
  useEffect(() => {
    const el = ref.current;
    if (!el) return;
    const width = () => Math.max(MIN_WIDTH, Math.floor(el.clientWidth));
    const plot = new uPlot({ ...options, width: width(), height }, data, el);
    let last = width();
    const observer = new ResizeObserver(() => {
      const w = width();
      if (w !== last) {
        last = w;
        plot.setSize({ width: w, height });
      }
    });
    observer.observe(el);
    return () => {
      observer.disconnect();
      plot.destroy();
    };
  }, [options, data, height]);
  return <div class={`chart${className ? ` ${className}` : ""}`} ref={ref} aria-hidden="true" />;
}
