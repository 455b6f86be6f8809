import type { ComponentChildren } from "preact";

/**
 * A wide table's own scrolling box (at a phone's width the page does not
 * scroll sideways): focusable and labelled, so keyboard users can scroll it.
 */
export function Scroll({ label, children }: { label: string; children: ComponentChildren }) {
  return (
    <div class="table-wrap" tabIndex={0} role="region" aria-label={label}>
      {children}
    </div>
  );
}
