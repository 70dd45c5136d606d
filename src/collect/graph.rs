//! The reference graph between CSS/JS files, evaluated in dependency order.
//!
//! Django reaches the fixed point `name(F) = hash(rewrite(F, names of F's targets))` by
//! re-running every file up to six times; here each file is rewritten exactly once, after all of
//! its targets, level by level so that a level runs in parallel. A cycle has no fixed point:
//! it is reported with the files in it (Django: "Max post-process passes exceeded").

/// `deps[i]` = indices of the nodes node `i` references (its targets). Returns the nodes in
/// levels: every node's targets lie in earlier levels. `Err` holds the cycles, each a sorted
/// list of node indices (strongly connected components with a cycle).
pub fn levels(deps: &[Vec<usize>]) -> Result<Vec<Vec<usize>>, Vec<Vec<usize>>> {
    let n = deps.len();
    let mut remaining: Vec<usize> = deps
        .iter()
        .map(|d| {
            let mut d = d.clone();
            d.sort_unstable();
            d.dedup();
            d.len()
        })
        .collect();
    let mut dependants = vec![Vec::new(); n];
    for (i, d) in deps.iter().enumerate() {
        let mut d = d.clone();
        d.sort_unstable();
        d.dedup();
        for t in d {
            dependants[t].push(i);
        }
    }
    let mut current: Vec<usize> = (0..n).filter(|&i| remaining[i] == 0).collect();
    let mut out = Vec::new();
    let mut done = 0;
    while !current.is_empty() {
        done += current.len();
        let mut next = Vec::new();
        for &i in &current {
            for &j in &dependants[i] {
                remaining[j] -= 1;
                if remaining[j] == 0 {
                    next.push(j);
                }
            }
        }
        next.sort_unstable();
        out.push(std::mem::replace(&mut current, next));
    }
    if done == n {
        Ok(out)
    } else {
        Err(cycles(deps))
    }
}

/// Strongly connected components that contain a cycle (Tarjan, iterative).
fn cycles(deps: &[Vec<usize>]) -> Vec<Vec<usize>> {
    let n = deps.len();
    let mut index = vec![usize::MAX; n];
    let mut low = vec![0; n];
    let mut on_stack = vec![false; n];
    let mut stack = Vec::new();
    let mut next_index = 0;
    let mut result = Vec::new();
    for root in 0..n {
        if index[root] != usize::MAX {
            continue;
        }
        let mut call: Vec<(usize, usize)> = vec![(root, 0)];
        index[root] = next_index;
        low[root] = next_index;
        next_index += 1;
        stack.push(root);
        on_stack[root] = true;
        while let Some(&mut (v, ref mut edge)) = call.last_mut() {
            if let Some(&w) = deps[v].get(*edge) {
                *edge += 1;
                if index[w] == usize::MAX {
                    index[w] = next_index;
                    low[w] = next_index;
                    next_index += 1;
                    stack.push(w);
                    on_stack[w] = true;
                    call.push((w, 0));
                } else if on_stack[w] {
                    low[v] = low[v].min(index[w]);
                }
            } else {
                call.pop();
                if let Some(&(parent, _)) = call.last() {
                    low[parent] = low[parent].min(low[v]);
                }
                if low[v] == index[v] {
                    let mut comp = Vec::new();
                    loop {
                        let w = stack.pop().expect("tarjan stack");
                        on_stack[w] = false;
                        comp.push(w);
                        if w == v {
                            break;
                        }
                    }
                    if comp.len() > 1 || deps[v].contains(&v) {
                        comp.sort_unstable();
                        result.push(comp);
                    }
                }
            }
        }
    }
    result.sort();
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_and_diamond_levels() {
        // 0 -> 1 -> 2, 0 -> 2, 3 alone
        let deps = vec![vec![1, 2], vec![2], vec![], vec![]];
        assert_eq!(levels(&deps).unwrap(), vec![vec![2, 3], vec![1], vec![0]]);
    }

    #[test]
    fn duplicate_edges_count_once() {
        let deps = vec![vec![1, 1, 1], vec![]];
        assert_eq!(levels(&deps).unwrap(), vec![vec![1], vec![0]]);
    }

    #[test]
    fn cycles_are_named() {
        // 0 <-> 1 (foo/bar), 2 -> 0 (baz, not in the cycle), 3 self-loop
        let deps = vec![vec![1], vec![0], vec![0], vec![3]];
        assert_eq!(levels(&deps).unwrap_err(), vec![vec![0, 1], vec![3]]);
    }

    #[test]
    fn long_chain_is_fine() {
        let n = 10_000;
        let deps: Vec<Vec<usize>> = (0..n)
            .map(|i| if i + 1 < n { vec![i + 1] } else { vec![] })
            .collect();
        assert_eq!(levels(&deps).unwrap().len(), n);
    }
}
